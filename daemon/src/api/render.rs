//! Domain values → the wire JSON of local-api.md. The only place that
//! knows the API's field names; the domain never builds API JSON.

use std::time::SystemTime;

use chrono::{DateTime, Local, SecondsFormat};
use scanner_drivers::ScannerState;
use serde_json::{Map, Value, json};
use settlement_client::LinkState;

use super::jsonrpc;
use crate::engine::Usage;
use crate::events::{Event, ScanEvent};
use crate::identity::Identified;
use crate::journal::{Problem, Record};
use crate::scanhub::ScannerStatus;
use crate::service::{Answer, DemoScanned, Notice, SystemInfo};

/// The version of the local API this daemon serves (`system.info` `api`).
pub const API_VERSION: &str = "1";

/// `2026-11-23T10:00:00.123+08:00`.
fn millis(t: &DateTime<Local>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, false)
}

/// A system time as [`millis`].
fn system_time(t: SystemTime) -> String {
    millis(&DateTime::<Local>::from(t))
}

/// A call's result.
pub fn answer(a: Answer) -> Value {
    match a {
        Answer::SystemInfo(i) => system_info(&i),
        Answer::Scanners(s) => scanners(&s),
        Answer::Subscribed(id) => json!({"subscription": id}),
        Answer::Unsubscribed => json!({}),
        Answer::Identity(who) => identity(&who),
        Answer::Record(r) => record(&r),
        Answer::Records(rs) => Value::Array(rs.iter().map(record).collect()),
        Answer::Usage(u) => usage(&u),
        Answer::DemoScanned(d) => demo_scanned(&d),
        Answer::Discovered => super::openrpc::document().clone(),
    }
}

/// `system.info`.
pub fn system_info(i: &SystemInfo) -> Value {
    let t = &i.cfg.terminal;
    let signed_in_at = match &i.link {
        LinkState::Online { signed_in_at } => Value::String(signed_in_at.to_rfc3339()),
        _ => Value::Null,
    };
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "api": API_VERSION,
        "terminal": {
            "fixmedins_code": t.fixmedins_code,
            "fixmedins_name": t.fixmedins_name,
            "opter": t.opter,
            "mdtrtarea_admvs": t.mdtrtarea_admvs,
        },
        "gateway": {
            "profile": i.cfg.gateway.profile.as_str(),
            "auth": i.cfg.gateway.auth.as_str(),
            "state": i.link.as_str(),
            "signed_in_at": signed_in_at,
        },
        "scanners": scanners(&i.scanners),
        "journal": match &i.journal {
            Ok(c) => json!({
                "path": i.journal_path.display().to_string(),
                "unresolved": c.unresolved,
                "reversal_failed": c.reversal_failed,
                "stale": c.stale,
            }),
            Err(e) => json!({"error": e.to_string()}),
        },
    })
}

/// `scanner.list`.
pub fn scanners(list: &[ScannerStatus]) -> Value {
    Value::Array(
        list.iter()
            .map(|s| {
                json!({
                    "id": s.id,
                    "transport": s.transport.as_str(),
                    "path": s.path.as_ref().map(|p| p.display().to_string()),
                    "vid": s.vid.map(|v| format!("{v:04x}")),
                    "pid": s.pid.map(|v| format!("{v:04x}")),
                    "state": s.state.as_str(),
                    "error": match &s.state { ScannerState::Error(e) => Value::String(e.clone()), _ => Value::Null },
                    "last_scan_at": s.last_scan_at.map(system_time),
                    "scans": s.scans,
                    "armed": s.armed,
                })
            })
            .collect(),
    )
}

/// The identity result of `scan.wait` and `identity.lookup`.
pub fn identity(who: &Identified) -> Value {
    let s = &who.session;
    let mut cred = json!({
        "mdtrt_cert_type": s.credential.mdtrt_cert_type,
        "mdtrt_cert_no": s.credential.mdtrt_cert_no,
    });
    if let Some(sn) = &s.credential.card_sn {
        cred["card_sn"] = Value::String(sn.clone());
    }
    let p = &who.person;
    json!({
        "session_id": s.id,
        "expires_at": s.expires_at.to_rfc3339_opts(SecondsFormat::Secs, false),
        "credential": cred,
        "decode": who.decode.clone().map(Value::Object),
        "person": {
            "baseinfo": p.get("baseinfo").cloned().unwrap_or(Value::Null),
            "insuinfo": p.get("insuinfo").cloned().unwrap_or(json!([])),
            "idetinfo": p.get("idetinfo").cloned().unwrap_or(json!([])),
        },
    })
}

/// A transaction record (local-api.md "Transaction record"); a record a
/// person closed also carries `resolution`.
pub fn record(r: &Record) -> Value {
    let mut v = json!({
        "txn_id": r.txn_id,
        "client_ref": r.client_ref,
        "infno": r.infno,
        "msgid": r.msgid,
        "state": r.state.as_str(),
        "created_at": millis(&r.created_at),
        "updated_at": millis(&r.updated_at),
        "output": r.output,
        // The wire form of a problem is its journaled form (`kind` + fields),
        // kept stable by `Problem::to_json` and the golden transcript.
        "error": r.error.as_ref().map(Problem::to_json),
        "reversal": r.reversal.as_ref().map(|x| json!({"msgid": x.msgid, "infno": x.infno, "state": x.state, "attempts": x.attempts})),
        "attempts": r.attempts,
    });
    if let Some(c) = &r.closed {
        v["resolution"] = c.to_json();
    }
    v
}

/// `report.usage`.
pub fn usage(u: &Usage) -> Value {
    json!({
        "from": u.from.to_string(),
        "to": u.to.to_string(),
        "settlements": {"total": u.total(), "by_cert_type": u.by_cert_type},
        "medical_code_rate": u.medical_code_rate(),
        "by_day": u.by_day.iter().map(|d| json!({"date": d.date.to_string(), "total": d.total, "medical_code": d.medical_code})).collect::<Vec<_>>(),
    })
}

/// `demo.scan`.
pub fn demo_scanned(d: &DemoScanned) -> Value {
    match d {
        DemoScanned::Text(t) => json!({"kind": "text", "text": t}),
        DemoScanned::Garbage => json!({"kind": "garbage"}),
        DemoScanned::Code { kind, text, person } => json!({
            "kind": kind,
            "text": text,
            "person": person.as_ref().map(|p| json!({"psn_no": p.psn_no, "psn_name": p.psn_name})),
        }),
    }
}

/// An event's fields (without `topic`).
fn event_fields(e: &Event) -> Value {
    match e {
        Event::Scan(ScanEvent {
            scan_id,
            scanner,
            at,
            class,
            symbology,
            text,
        }) => json!({
            "scan_id": scan_id,
            "scanner": scanner,
            "at": system_time(*at),
            "class": class.as_str(),
            "symbology": symbology.map(|s| s.as_aim()),
            "text": text,
        }),
        Event::Scanner { scanner, state } => {
            let mut f = json!({"scanner": scanner, "state": state.as_str()});
            if let ScannerState::Error(e) = state {
                f["error"] = Value::String(e.clone());
            }
            f
        }
        Event::Txn {
            txn_id,
            client_ref,
            infno,
            state,
        } => {
            json!({"txn_id": txn_id, "client_ref": client_ref, "infno": infno, "state": state.as_str()})
        }
        Event::Gateway(s) => {
            let mut v = json!({"state": s.as_str()});
            match s {
                LinkState::Online { signed_in_at } => {
                    v["signed_in_at"] = signed_in_at.to_rfc3339().into()
                }
                LinkState::Offline { reason } => v["reason"] = reason.clone().into(),
                LinkState::SigningIn => {}
            }
            v
        }
    }
}

/// A subscription's notification: `{"method": "event", "params": {"topic": …, …, "subscription": …}}`.
pub fn notice(subscription: &str, n: Notice<'_>) -> Value {
    let mut m = Map::new();
    match n {
        Notice::Event(e) => {
            m.insert("topic".into(), Value::String(e.topic().into()));
            if let Value::Object(f) = event_fields(e) {
                m.extend(f);
            }
        }
        Notice::Lagged(missed) => {
            m.insert("topic".into(), Value::String("lagged".into()));
            m.insert("missed".into(), json!(missed));
        }
    }
    m.insert(
        "subscription".into(),
        Value::String(subscription.to_string()),
    );
    jsonrpc::notification(Value::Object(m))
}
