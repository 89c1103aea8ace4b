//! Undoing and finding requests whose answer was lost (gateway.md §5): the
//! request bodies of 2601 (冲正), of the own cancels that undo a fee upload
//! (2205) or a discharge (2405), and of the visit and fee queries (5201,
//! 5204) that find a lost registration or upload; and reading their answers.
//!
//! The money engine retries a resolution until the answer is definitive.
//! Some refusals are definitive *and* tell what state the original is in;
//! they are recognised by their wording ([`crate::wording`], the one table
//! of them), because the platform gives them all the same `infcode -1`.

use serde_json::{Value, json};

use crate::envelope::Response;
use crate::outcome::Outcome;
use crate::wording::{self, Meaning};

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
    /// A refusal whose wording is not known: not definitive; retried up
    /// to a limit, then a person looks.
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
            Outcome::Rejected { infcode, err_msg } => match wording::meaning(err_msg) {
                Some(Meaning::RefundFlagSet) => ReversalAnswer::RefusedCancelled {
                    err_msg: err_msg.clone(),
                },
                Some(Meaning::OriginalNotFound) => ReversalAnswer::NothingToReverse,
                Some(Meaning::AlreadyReversed) => ReversalAnswer::AlreadyReversed,
                _ => ReversalAnswer::Refused {
                    infcode: *infcode,
                    err_msg: err_msg.clone(),
                },
            },
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

/// Whether a refusal says there was nothing to cancel or find (an original
/// that is not there, or that is gone already).
pub fn finds_nothing(err_msg: &str) -> bool {
    matches!(
        wording::meaning(err_msg),
        Some(Meaning::NothingFound | Meaning::OriginalNotFound)
    )
}

/// The `input` of a 2601 reversal of the request `omsgid` (`oinfno`).
pub fn reversal_input(psn_no: &str, omsgid: &str, oinfno: &str) -> Value {
    json!({"data": {"psn_no": psn_no, "omsgid": omsgid, "oinfno": oinfno}})
}

/// The `input` of a 2205 cancelling the fee lines of `chrg_bchno` (it names
/// the whole batch, not single lines).
pub fn fee_cancel_input(psn_no: &str, mdtrt_id: &str, chrg_bchno: &str) -> Value {
    json!({"data": {"mdtrt_id": mdtrt_id, "chrg_bchno": chrg_bchno, "psn_no": psn_no}})
}

/// The `input` of a 2405 cancelling the discharge of `mdtrt_id`.
pub fn discharge_cancel_input(psn_no: &str, mdtrt_id: &str) -> Value {
    json!({"data": {"mdtrt_id": mdtrt_id, "psn_no": psn_no}})
}

/// The `input` of a 5201 visit query (the visits of `psn_no` from
/// `begntime` of `med_type`).
pub fn visit_query_input(psn_no: &str, begntime: &str, med_type: &str) -> Value {
    json!({"data": {"psn_no": psn_no, "begntime": begntime, "med_type": med_type}})
}

/// The `input` of a 5204 fee query (the fee lines of `mdtrt_id`).
pub fn fee_query_input(psn_no: &str, mdtrt_id: &str) -> Value {
    json!({"data": {"psn_no": psn_no, "mdtrt_id": mdtrt_id}})
}

/// The visits (`mdtrtinfo[]`) of a 5201 answer's `output`; empty when absent.
pub fn visits(output: &Value) -> &[Value] {
    output["mdtrtinfo"].as_array().map_or(&[], Vec::as_slice)
}

/// The fee lines (`feedetail[]`) of a 5204 answer's `output`; empty when absent.
pub fn fee_lines(output: &Value) -> &[Value] {
    output["feedetail"].as_array().map_or(&[], Vec::as_slice)
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
    fn the_real_capture_means_refund_flag_set() {
        assert_eq!(
            wording::meaning(wording::REFUND_FLAG_SET_CAPTURE),
            Some(Meaning::RefundFlagSet)
        );
    }

    #[test]
    fn answers_are_classified() {
        assert_eq!(
            ReversalAnswer::of(&Outcome::Ok(Response::success(serde_json::json!({})))),
            ReversalAnswer::Reversed
        );
        assert!(matches!(
            ReversalAnswer::of(&rej(wording::REFUND_FLAG_SET_CAPTURE)),
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

    #[test]
    fn bodies_and_lists() {
        assert_eq!(
            reversal_input("P", "M", "2102").to_string(),
            r#"{"data":{"psn_no":"P","omsgid":"M","oinfno":"2102"}}"#
        );
        assert_eq!(
            fee_cancel_input("P", "V", "B").to_string(),
            r#"{"data":{"mdtrt_id":"V","chrg_bchno":"B","psn_no":"P"}}"#
        );
        assert!(finds_nothing("FSI-就诊信息不存在"));
        assert!(finds_nothing("FSI-冲正失败:原交易不存在"));
        assert!(!finds_nothing("FSI-系统繁忙"));
        let out = json!({"mdtrtinfo": [{"mdtrt_id": "1"}], "feedetail": "x"});
        assert_eq!(visits(&out).len(), 1);
        assert!(fee_lines(&out).is_empty());
        assert!(visits(&Value::Null).is_empty());
    }
}
