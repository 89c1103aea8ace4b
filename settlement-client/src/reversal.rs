//! Reading the answer to a 2601 reversal (冲正, gateway.md §5).
//!
//! The money engine retries a reversal until the answer is definitive. Some
//! refusals are definitive *and* tell what state the original is in; they
//! are recognised by message fragments, because the platform gives them all
//! the same `infcode -1`. The fragments are public so the engine, the
//! simulator and the tests share one spelling.

use crate::envelope::Response;
use crate::outcome::Outcome;

/// Fragment of the real Zhejiang refusal to reverse a settlement that was
/// already cancelled (2103/2208/2305): its refund flag is set
/// (platform-sources.md §4).
pub const REFUND_FLAG_SET: &str = "退费结算标志不为未退费";

/// The full real refusal captured in Zhejiang (platform-sources.md §4).
pub const REFUND_FLAG_SET_MSG: &str = "FSI-调用业务基础子系统冲正失败:冲正的结算信息退费结算标志不为未退费，不能办理冲正交易[iptPsnSetlMgtBO_4412][outpatientSettleBO_40]";

/// Fragment of the answer to a reversal whose original never arrived or had
/// no effect: nothing to undo, harmless and definitive [guess: wording].
pub const ORIGINAL_NOT_FOUND: &str = "原交易不存在";

/// Fragment of the answer to a second reversal of the same original: it is
/// already undone, definitive [guess: wording].
pub const ALREADY_REVERSED: &str = "已冲正";

/// What a 2601 answer means for the original transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReversalAnswer {
    /// `infcode 0`: the original is undone now.
    Reversed,
    /// The original never took effect (or never arrived): nothing to undo.
    NothingToReverse,
    /// The original was undone by an earlier reversal.
    AlreadyReversed,
    /// The original settlement was cancelled (2208 etc.) and stays so.
    RefusedCancelled {
        /// The platform's message.
        err_msg: String,
    },
    /// Another definitive refusal: needs a person to look.
    Refused {
        /// `infcode`.
        infcode: i64,
        /// The platform's message.
        err_msg: String,
    },
    /// Not known whether the reversal arrived (not sent or unknown): retry it.
    Retry {
        /// Why.
        reason: String,
    },
}

impl ReversalAnswer {
    /// Classifies the outcome of a 2601 call.
    pub fn of(out: &Outcome<Response>) -> ReversalAnswer {
        match out {
            Outcome::Ok(_) => ReversalAnswer::Reversed,
            Outcome::Rejected { infcode, err_msg } => {
                if err_msg.contains(REFUND_FLAG_SET) {
                    ReversalAnswer::RefusedCancelled {
                        err_msg: err_msg.clone(),
                    }
                } else if err_msg.contains(ORIGINAL_NOT_FOUND) {
                    ReversalAnswer::NothingToReverse
                } else if err_msg.contains(ALREADY_REVERSED) {
                    ReversalAnswer::AlreadyReversed
                } else {
                    ReversalAnswer::Refused {
                        infcode: *infcode,
                        err_msg: err_msg.clone(),
                    }
                }
            }
            Outcome::NotSent { reason } | Outcome::Unknown { reason } => ReversalAnswer::Retry {
                reason: reason.clone(),
            },
        }
    }

    /// The original is certainly not in effect any more (or never was).
    pub fn original_is_void(&self) -> bool {
        matches!(
            self,
            ReversalAnswer::Reversed
                | ReversalAnswer::NothingToReverse
                | ReversalAnswer::AlreadyReversed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rej(m: &str) -> Outcome<Response> {
        Outcome::Rejected {
            infcode: -1,
            err_msg: m.into(),
        }
    }

    #[test]
    fn fragments_do_not_overlap() {
        for (a, b) in [
            (REFUND_FLAG_SET, ORIGINAL_NOT_FOUND),
            (REFUND_FLAG_SET, ALREADY_REVERSED),
            (ORIGINAL_NOT_FOUND, ALREADY_REVERSED),
        ] {
            assert!(!a.contains(b) && !b.contains(a));
        }
        assert!(REFUND_FLAG_SET_MSG.contains(REFUND_FLAG_SET));
        assert!(!REFUND_FLAG_SET_MSG.contains(ALREADY_REVERSED));
    }

    #[test]
    fn answers_are_classified() {
        assert_eq!(
            ReversalAnswer::of(&Outcome::Ok(Response::success(serde_json::json!({})))),
            ReversalAnswer::Reversed
        );
        assert!(matches!(
            ReversalAnswer::of(&rej(REFUND_FLAG_SET_MSG)),
            ReversalAnswer::RefusedCancelled { .. }
        ));
        assert_eq!(
            ReversalAnswer::of(&rej("FSI-冲正失败:原交易不存在")),
            ReversalAnswer::NothingToReverse
        );
        assert_eq!(
            ReversalAnswer::of(&rej("FSI-冲正失败:原交易已冲正，不能重复冲正")),
            ReversalAnswer::AlreadyReversed
        );
        assert!(matches!(
            ReversalAnswer::of(&rej("FSI-其他")),
            ReversalAnswer::Refused { infcode: -1, .. }
        ));
        assert!(matches!(
            ReversalAnswer::of(&Outcome::Unknown { reason: "t".into() }),
            ReversalAnswer::Retry { .. }
        ));
        assert!(
            !ReversalAnswer::Retry {
                reason: String::new()
            }
            .original_is_void()
        );
    }
}
