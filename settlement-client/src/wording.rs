//! What the platform's refusal texts mean: the one table of the wordings
//! the engine acts on, each with its source.
//!
//! The platform gives almost every refusal the same `infcode -1`; what a
//! refusal *means* — nothing to reverse, already reversed, already
//! cancelled, a duplicate msgid — is only in `err_msg`. Only the meanings
//! listed here are acted on; any other text is "unclear": retried with
//! back-off up to a limit, then handed to a person, never taken as
//! definitive. Wordings marked `guess` come from no real capture and may
//! differ by province: extend the table when a real one is seen, with its
//! source.

/// What a refusal says about the request it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// 2601: the original settlement was cancelled (its refund flag is set);
    /// it is not in effect and cannot be reversed.
    RefundFlagSet,
    /// 2601: the original never arrived or never took effect.
    OriginalNotFound,
    /// 2601: the original was reversed already.
    AlreadyReversed,
    /// A cancel: what it cancels is cancelled already.
    AlreadyCancelled,
    /// A cancel or query: there is nothing to cancel or find.
    NothingFound,
    /// The msgid was used before (by another terminal of the institution):
    /// the request was not executed.
    DuplicateMsgid,
}

/// How sure a wording is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Certainty {
    /// Seen in a real capture.
    Captured,
    /// Inferred; no real capture.
    Guess,
}

/// One known wording.
#[derive(Debug, Clone, Copy)]
pub struct Wording {
    /// A fragment of `err_msg` that carries the meaning.
    pub fragment: &'static str,
    /// What it means.
    pub meaning: Meaning,
    /// How sure it is.
    pub certainty: Certainty,
    /// Where it comes from.
    pub source: &'static str,
}

/// The real Zhejiang refusal to reverse a settlement that was cancelled
/// (platform-sources.md §4), whole, for tests.
pub const REFUND_FLAG_SET_CAPTURE: &str = "FSI-调用业务基础子系统冲正失败:冲正的结算信息退费结算标志不为未退费，不能办理冲正交易[iptPsnSetlMgtBO_4412][outpatientSettleBO_40]";

/// The known wordings, most specific first (the first match wins).
pub const WORDINGS: &[Wording] = &[
    Wording {
        fragment: "退费结算标志不为未退费",
        meaning: Meaning::RefundFlagSet,
        certainty: Certainty::Captured,
        source: "real Zhejiang 2601 refusal (ZJ-C), platform-sources.md §4",
    },
    Wording {
        fragment: "原交易不存在",
        meaning: Meaning::OriginalNotFound,
        certainty: Certainty::Guess,
        source: "gateway.md §5 rule 2 ('a reversal of something that never arrived fails harmlessly'); wording inferred",
    },
    Wording {
        fragment: "已冲正",
        meaning: Meaning::AlreadyReversed,
        certainty: Certainty::Guess,
        source: "gateway.md §5 rule 2 ('already reversed'); wording inferred",
    },
    Wording {
        fragment: "报文ID重复",
        meaning: Meaning::DuplicateMsgid,
        certainty: Certainty::Guess,
        source: "gateway.md §5 rule 6 and the money-safety issue ('报文ID重复')",
    },
    Wording {
        fragment: "msgid重复",
        meaning: Meaning::DuplicateMsgid,
        certainty: Certainty::Guess,
        source: "variant of 报文ID重复",
    },
    Wording {
        fragment: "已撤销",
        meaning: Meaning::AlreadyCancelled,
        certainty: Certainty::Guess,
        source: "gateway.md §5 rule 5 ('a cancel refused as already cancelled has taken effect'); wording inferred",
    },
    Wording {
        fragment: "未找到",
        meaning: Meaning::NothingFound,
        certainty: Certainty::Guess,
        source: "common FSI refusal wording (未找到/不存在/未办理); inferred",
    },
    Wording {
        fragment: "不存在",
        meaning: Meaning::NothingFound,
        certainty: Certainty::Guess,
        source: "common FSI refusal wording; inferred",
    },
    Wording {
        fragment: "未办理",
        meaning: Meaning::NothingFound,
        certainty: Certainty::Guess,
        source: "common FSI refusal wording (e.g. 未办理出院); inferred",
    },
];

/// The meaning of a refusal text, if the table knows it.
pub fn meaning(err_msg: &str) -> Option<Meaning> {
    WORDINGS
        .iter()
        .find(|w| err_msg.contains(w.fragment))
        .map(|w| w.meaning)
}

/// The first fragment of the table with `meaning` (for tests and docs).
pub fn fragment(meaning: Meaning) -> &'static str {
    WORDINGS
        .iter()
        .find(|w| w.meaning == meaning)
        .map_or("", |w| w.fragment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_reads_real_and_inferred_texts() {
        let cases = [
            (
                "FSI-调用业务基础子系统冲正失败:冲正的结算信息退费结算标志不为未退费，不能办理冲正交易[iptPsnSetlMgtBO_4412][outpatientSettleBO_40]",
                Some(Meaning::RefundFlagSet),
            ),
            (
                "FSI-冲正失败:原交易不存在[omsgid=x]",
                Some(Meaning::OriginalNotFound),
            ),
            (
                "FSI-冲正失败:原交易[x]已冲正，不能重复冲正",
                Some(Meaning::AlreadyReversed),
            ),
            ("FSI-报文ID重复: P4213…", Some(Meaning::DuplicateMsgid)),
            (
                "FSI-就诊信息[300000001]已撤销",
                Some(Meaning::AlreadyCancelled),
            ),
            ("FSI-未找到可撤销的费用明细", Some(Meaning::NothingFound)),
            ("FSI-该患者未办理出院", Some(Meaning::NothingFound)),
            ("FSI-结算信息[S1]不存在", Some(Meaning::NothingFound)),
            ("FSI-冲正失败:原交易正在处理中，请稍后再试", None),
            ("FSI-系统繁忙", None),
        ];
        for (text, want) in cases {
            assert_eq!(meaning(text), want, "{text}");
        }
        for w in WORDINGS {
            assert!(!w.source.is_empty());
            assert_eq!(meaning(w.fragment), Some(w.meaning), "{}", w.fragment);
        }
    }
}
