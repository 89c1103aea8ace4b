//! Requests parsed into typed [`Call`]s. Handlers never touch devices, the
//! gateway or the journal: they only parse; [`crate::service`] executes.

use std::time::Duration;

use chrono::{DateTime, Local};
use serde_json::{Map, Value};

use super::error::ApiError;
use super::params::Params;
use crate::engine::machine::State;
use crate::engine::{Submit, TxnKey};
use crate::events::TOPICS;
use crate::identity::Given;
use crate::service::Call;

pub use crate::service::SCAN_WAIT_DEFAULT;
/// Longest `scan.wait`.
pub const SCAN_WAIT_MAX: Duration = Duration::from_secs(120);

/// Checks a `client_ref`: 1–64 chars of `[A-Za-z0-9._:-]`.
fn client_ref(p: &Params<'_>) -> Result<String, ApiError> {
    let r = p.str("client_ref")?;
    if r.len() > 64
        || !r
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
    {
        return Err(ApiError::invalid_params(
            "client_ref",
            "must be 1–64 characters of [A-Za-z0-9._:-]",
        ));
    }
    Ok(r)
}

/// `since` of `txn.list`: RFC 3339, or a date (local midnight).
fn since(s: &str) -> Result<DateTime<Local>, ApiError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Local))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map_err(|_| ())
                .and_then(|d| d.and_hms_opt(0, 0, 0).ok_or(()))
                .and_then(|d| d.and_local_timezone(Local).single().ok_or(()))
        })
        .map_err(|_| ApiError::invalid_params("since", "must be RFC 3339 or yyyy-MM-dd"))
}

/// `state` of `txn.list`: a record state's API spelling.
fn state(s: &str) -> Result<State, ApiError> {
    State::parse(s).ok_or_else(|| {
        ApiError::invalid_params(
            "state",
            format!(
                "must be one of {}",
                State::ALL.map(State::as_str).join(", ")
            ),
        )
    })
}

fn date(p: &Params<'_>, k: &str) -> Result<chrono::NaiveDate, ApiError> {
    let s = p.str(k)?;
    chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d")
        .map_err(|_| ApiError::invalid_params(k, "must be a date yyyy-MM-dd"))
}

/// Parses `method` + `params` into a [`Call`].
pub fn parse(method: &str, params: &Map<String, Value>) -> Result<Call, ApiError> {
    let p = Params(params);
    Ok(match method {
        "system.info" => Call::SystemInfo,
        "scanner.list" => Call::ScannerList,
        "events.subscribe" => Call::Subscribe {
            topics: topics(params)?,
        },
        "events.unsubscribe" => Call::Unsubscribe {
            subscription: p.str("subscription")?,
        },
        "scan.wait" => {
            let timeout = timeout(&p)?;
            Call::ScanWait {
                business_type: p.business_type()?,
                scanner: p.opt_str("scanner")?,
                timeout,
            }
        }
        "identity.lookup" => {
            let business_type = p.business_type()?;
            Call::IdentityLookup {
                business_type,
                credential: credential(&p)?,
            }
        }
        "txn.submit" => {
            let client_ref = client_ref(&p)?;
            let infno = p.str("infno")?;
            let input = p.object("input")?.clone();
            Call::TxnSubmit(Submit {
                client_ref,
                infno,
                session_id: p.opt_str("session_id")?,
                insuplc_admdvs: p.opt_str("insuplc_admdvs")?,
                input,
            })
        }
        "txn.get" => Call::TxnGet(txn_key(&p)?),
        "txn.list" => txn_list(&p)?,
        "txn.resolve" => txn_resolve(&p)?,
        "rpc.discover" => Call::Discover,
        "report.usage" => {
            let from = date(&p, "from")?;
            let to = date(&p, "to")?;
            if to < from {
                return Err(ApiError::invalid_params("to", "must not be before from"));
            }
            Call::ReportUsage { from, to }
        }
        "demo.scan" => Call::DemoScan {
            person: p.opt_str("person")?,
            kind: p.opt_str("kind")?.unwrap_or_else(|| "medical".into()),
            text: p.opt_str("text")?,
        },
        other => return Err(ApiError::method_not_found(other)),
    })
}

/// `topics` of `events.subscribe` (default: all).
fn topics(params: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    match params.get("topics") {
        None => Ok(TOPICS.iter().map(|s| s.to_string()).collect()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| match t.as_str() {
                Some(s) if TOPICS.contains(&s) => Ok(s.to_string()),
                _ => Err(ApiError::invalid_params(
                    "topics",
                    format!("unknown topic {t}; topics are {}", TOPICS.join(", ")),
                )),
            })
            .collect(),
        Some(_) => Err(ApiError::invalid_params(
            "topics",
            "must be a list of topic names",
        )),
    }
}

/// `timeout_ms` of `scan.wait` (`None`: the terminal's default).
fn timeout(p: &Params<'_>) -> Result<Option<Duration>, ApiError> {
    match p.opt_u64("timeout_ms")? {
        None => Ok(None),
        Some(0) => Err(ApiError::invalid_params("timeout_ms", "must be at least 1")),
        Some(ms) if Duration::from_millis(ms) > SCAN_WAIT_MAX => Err(ApiError::invalid_params(
            "timeout_ms",
            "must be at most 120000",
        )),
        Some(ms) => Ok(Some(Duration::from_millis(ms))),
    }
}

/// `credential` of `identity.lookup`; errors name `credential.<field>`.
fn credential(p: &Params<'_>) -> Result<Given, ApiError> {
    let c = Params(p.object("credential")?);
    let nested = |mut e: ApiError| {
        let f = format!(
            "credential.{}",
            e.data
                .get("field")
                .and_then(Value::as_str)
                .unwrap_or_default()
        );
        e.message = format!("credential.{}", e.message);
        e.data.insert("field".into(), Value::String(f));
        e
    };
    let need = |k: &str| c.str(k).map_err(nested);
    Ok(match need("type")?.as_str() {
        "qr" => Given::Qr(need("value")?),
        "id_card" => Given::IdCard {
            certno: need("certno")?,
            psn_name: c.opt_str("psn_name").map_err(nested)?,
            read_from_card: c.flag("read_from_card").map_err(nested)?,
        },
        "ss_card" => Given::SsCard {
            card_no: need("card_no")?,
            card_sn: need("card_sn")?,
        },
        other => {
            return Err(ApiError::invalid_params(
                "credential.type",
                format!("must be qr, id_card or ss_card, got {other:?}"),
            ));
        }
    })
}

/// The record `txn.get` names: by `txn_id` when both are given.
fn txn_key(p: &Params<'_>) -> Result<TxnKey, ApiError> {
    let client_ref = p.opt_str("client_ref")?;
    let txn_id = p.opt_str("txn_id")?;
    match (txn_id, client_ref) {
        (Some(t), _) => Ok(TxnKey::TxnId(t)),
        (None, Some(c)) => Ok(TxnKey::ClientRef(c)),
        (None, None) => Err(ApiError::invalid_params(
            "client_ref",
            "give client_ref or txn_id",
        )),
    }
}

/// `txn.list`: types first, then values (so errors come in that order).
fn txn_list(p: &Params<'_>) -> Result<Call, ApiError> {
    let since_text = p.opt_str("since")?;
    let state_text = p.opt_str("state")?;
    let limit = match p.opt_u64("limit")? {
        None => 100,
        Some(n) if (1..=1000).contains(&n) => n as usize,
        Some(_) => return Err(ApiError::invalid_params("limit", "must be 1–1000")),
    };
    Ok(Call::TxnList {
        since: since_text.as_deref().map(since).transpose()?,
        state: state_text.as_deref().map(state).transpose()?,
        needs_person: p.flag("needs_person")?,
        limit,
    })
}

/// `txn.resolve`: a person's outcome for a record, with who and why.
fn txn_resolve(p: &Params<'_>) -> Result<Call, ApiError> {
    let txn_id = p.str("txn_id")?;
    let outcome = match p.str("outcome")?.as_str() {
        "succeeded" => State::Succeeded,
        "failed" => State::Failed,
        "reversed" => State::Reversed,
        other => {
            return Err(ApiError::invalid_params(
                "outcome",
                format!("must be succeeded, failed or reversed, got {other:?}"),
            ));
        }
    };
    Ok(Call::TxnResolve {
        txn_id,
        outcome,
        operator: p.text("operator", 64)?,
        note: p.text("note", 500)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn scan_wait_params() {
        let c = parse("scan.wait", &p(json!({"business_type": "02121"}))).unwrap();
        assert!(matches!(c, Call::ScanWait { timeout: None, .. }));
        let e = parse("scan.wait", &p(json!({}))).unwrap_err();
        assert_eq!(e.data["field"], "business_type");
        let e = parse("scan.wait", &p(json!({"business_type": "2121"}))).unwrap_err();
        assert_eq!(e.code, -32602);
        let e = parse(
            "scan.wait",
            &p(json!({"business_type": "02121", "timeout_ms": 500000})),
        )
        .unwrap_err();
        assert_eq!(e.data["field"], "timeout_ms");
    }

    #[test]
    fn identity_credentials() {
        let c = parse(
            "identity.lookup",
            &p(json!({"business_type": "01101", "credential": {"type": "id_card", "certno": "x", "psn_name": "n"}})),
        )
        .unwrap();
        assert!(matches!(
            c,
            Call::IdentityLookup {
                credential: Given::IdCard { .. },
                ..
            }
        ));
        let e = parse("identity.lookup", &p(json!({"business_type": "01101", "credential": {"type": "ss_card", "card_no": "x"}}))).unwrap_err();
        assert_eq!(e.data["field"], "credential.card_sn");
        let e = parse(
            "identity.lookup",
            &p(json!({"business_type": "01101", "credential": {"type": "face"}})),
        )
        .unwrap_err();
        assert_eq!(e.data["field"], "credential.type");
    }

    #[test]
    fn unknown_method_and_bad_client_ref() {
        assert_eq!(parse("nope", &Map::new()).unwrap_err().code, -32601);
        let e = parse(
            "txn.submit",
            &p(json!({"client_ref": "a b", "infno": "2102", "input": {}})),
        )
        .unwrap_err();
        assert_eq!(e.data["field"], "client_ref");
        let e = parse(
            "events.subscribe",
            &p(json!({"topics": ["scan", "weather"]})),
        )
        .unwrap_err();
        assert_eq!(e.data["field"], "topics");
    }
}
