//! Fault injection: what the simulator does wrong on purpose, per infno and
//! per count ("the next 2 calls of 2207: commit, then drop the connection").
//!
//! Each fault says whether the transaction is processed (committed) or not,
//! because that is exactly what the money engine must cope with: a client
//! that sees a reset cannot tell the two apart, the ledger can.

use serde::{Deserialize, Serialize};
use settlement_client::catalogue;

/// One kind of misbehaviour. Names are the control API's `kind` values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Wait `ms`, then process (commit) and answer. The processing happens
    /// even if the client has given up meanwhile, so a reversal sent at once
    /// can overtake it (as on a real network).
    Latency {
        /// Milliseconds.
        ms: u64,
    },
    /// Process (commit) at once, then wait `ms` before answering.
    CommitThenDelay {
        /// Milliseconds.
        ms: u64,
    },
    /// Answer HTTP `status` (default 502) without processing.
    Http5xx {
        /// 500–599.
        #[serde(default = "default_5xx")]
        status: u16,
    },
    /// Read the request, then reset the connection without processing.
    ResetBeforeCommit,
    /// Process (commit), then reset the connection without answering.
    CommitThenDrop,
    /// Answer HTTP 200 with a body that is not JSON, without processing.
    MalformedBeforeCommit,
    /// Process (commit), then answer HTTP 200 with a body that is not JSON.
    MalformedAfterCommit,
    /// Process, then answer with `infcode` as a string (`"0"`, `"-1"`).
    InfcodeAsString,
    /// Process, then send half the answer under the full `content-length`
    /// and reset the connection.
    TruncatedAfterCommit,
    /// Process, then answer in GBK with `content-type: …;charset=GBK`.
    GbkBody,
    /// Process, then pad the answer with spaces to `bytes` (still valid JSON).
    OversizeAfterCommit {
        /// Total body size.
        bytes: usize,
    },
    /// Answer `infcode -1` with `err_msg`, without processing: a refusal
    /// whose text the client may not know (e.g. a busy 2601).
    Refuse {
        /// The platform's message.
        err_msg: String,
    },
    /// Process (commit), then answer `infcode -1` with `err_msg`: a
    /// platform that commits and still says no.
    CommitThenRefuse {
        /// The platform's message.
        err_msg: String,
    },
    /// Process (commit), then answer HTTP `status` (e.g. a 4xx from a proxy
    /// in front of the gateway).
    CommitThenStatus {
        /// 400–599.
        status: u16,
    },
    /// Answer `infcode 0` with an empty `output`, without processing (a
    /// query answer without its list).
    EmptyOk,
    /// Process (commit), then answer `infcode 0` with an empty `output` (a
    /// settlement answer without `setlinfo`).
    CommitThenEmptyOk,
    /// Reset the connection at once, and process (commit) `ms` later: a
    /// commit that lands long after the client gave up.
    ResetThenLateCommit {
        /// Milliseconds until the commit.
        ms: u64,
    },
}

fn default_5xx() -> u16 {
    502
}

fn one() -> u32 {
    1
}

impl FaultKind {
    /// Whether the transaction is processed (and, if it moves money, committed).
    pub fn commits(&self) -> bool {
        !matches!(
            self,
            FaultKind::Http5xx { .. }
                | FaultKind::ResetBeforeCommit
                | FaultKind::MalformedBeforeCommit
                | FaultKind::Refuse { .. }
                | FaultKind::EmptyOk
        )
    }
}

/// A fault armed for the next `times` matching calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    /// Only calls of this infno (`2207` also matches `2207A`); none = any call.
    #[serde(default)]
    pub infno: Option<String>,
    /// How many matching calls it hits (default 1).
    #[serde(default = "one")]
    pub times: u32,
    /// What it does.
    #[serde(flatten)]
    pub kind: FaultKind,
}

impl FaultRule {
    /// `kind` on the next call of `infno`.
    pub fn next(infno: &str, kind: FaultKind) -> FaultRule {
        FaultRule {
            infno: Some(infno.to_string()),
            times: 1,
            kind,
        }
    }

    /// The same rule for the next `n` matching calls.
    pub fn times(mut self, n: u32) -> FaultRule {
        self.times = n;
        self
    }

    fn matches(&self, infno: &str) -> bool {
        match &self.infno {
            None => true,
            Some(want) => {
                want == infno || catalogue::spec(infno).is_some_and(|s| s.infno == want.as_str())
            }
        }
    }
}

/// A fault that hit a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FiredFault {
    /// The rule's id.
    pub id: u64,
    /// The call's infno.
    pub infno: String,
    /// The call's msgid (empty for a bare decode body).
    pub msgid: String,
    /// What was done.
    #[serde(flatten)]
    pub kind: FaultKind,
}

/// Armed rules and what fired (simulator side).
#[derive(Debug, Default)]
pub struct Faults {
    next_id: u64,
    armed: Vec<(u64, FaultRule)>,
    fired: Vec<FiredFault>,
}

impl Faults {
    /// Arms a rule; returns its id.
    pub fn add(&mut self, rule: FaultRule) -> u64 {
        self.next_id += 1;
        if rule.times > 0 {
            self.armed.push((self.next_id, rule));
        }
        self.next_id
    }

    /// Disarms everything.
    pub fn clear(&mut self) {
        self.armed.clear();
    }

    /// Rules still armed, with their ids and remaining counts.
    pub fn armed(&self) -> Vec<(u64, FaultRule)> {
        self.armed.clone()
    }

    /// Faults that hit calls, oldest first.
    pub fn fired(&self) -> &[FiredFault] {
        &self.fired
    }

    /// The fault for a call of `infno`, if one is armed (first armed first).
    pub fn take(&mut self, infno: &str, msgid: &str) -> Option<FaultKind> {
        let pos = self.armed.iter().position(|(_, r)| r.matches(infno))?;
        let (id, rule) = &mut self.armed[pos];
        let (id, kind) = (*id, rule.kind.clone());
        rule.times -= 1;
        if rule.times == 0 {
            self.armed.remove(pos);
        }
        self.fired.push(FiredFault {
            id,
            infno: infno.to_string(),
            msgid: msgid.to_string(),
            kind: kind.clone(),
        });
        Some(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_from_the_control_api_shape() {
        let r: FaultRule =
            serde_json::from_str(r#"{"infno":"2207","kind":"commit_then_drop","times":2}"#)
                .unwrap();
        assert_eq!(
            r,
            FaultRule::next("2207", FaultKind::CommitThenDrop).times(2)
        );
        let r: FaultRule = serde_json::from_str(r#"{"kind":"http5xx"}"#).unwrap();
        assert_eq!(r.kind, FaultKind::Http5xx { status: 502 });
        assert_eq!(r.infno, None);
        let r: FaultRule =
            serde_json::from_str(r#"{"infno":"9001","kind":"latency","ms":1500}"#).unwrap();
        assert_eq!(r.kind, FaultKind::Latency { ms: 1500 });
        assert!(serde_json::from_str::<FaultRule>(r#"{"kind":"explode"}"#).is_err());
        assert!(serde_json::from_str::<FaultRule>(r#"{"kind":"latency"}"#).is_err());
        assert_eq!(
            serde_json::to_value(FaultKind::OversizeAfterCommit { bytes: 9 }).unwrap(),
            serde_json::json!({"kind": "oversize_after_commit", "bytes": 9})
        );
    }

    #[test]
    fn counts_and_infno_matching() {
        let mut f = Faults::default();
        f.add(FaultRule::next("2207", FaultKind::CommitThenDrop).times(2));
        f.add(FaultRule {
            infno: None,
            times: 1,
            kind: FaultKind::InfcodeAsString,
        });
        assert_eq!(f.take("2207A", "m1"), Some(FaultKind::CommitThenDrop));
        assert_eq!(f.take("1101", "m2"), Some(FaultKind::InfcodeAsString));
        assert_eq!(f.take("1101", "m3"), None);
        assert_eq!(f.take("2207", "m4"), Some(FaultKind::CommitThenDrop));
        assert_eq!(f.take("2207", "m5"), None);
        assert_eq!(f.fired().len(), 3);
        assert!(f.armed().is_empty());
        assert!(!FaultKind::ResetBeforeCommit.commits());
        assert!(FaultKind::CommitThenDrop.commits());
    }
}
