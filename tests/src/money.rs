//! Helpers for money tests: identity sessions of the simulator's people,
//! inputs of the usual transactions, waiting for final records, and what
//! the simulator's ledger says about a sale.

use std::time::Duration;

use serde_json::{Value, json};
use settlement_sim::ledger::{Ledger, RecordKind, RecordState};

use crate::{Client, Terminal};

/// A person at the counter: their identity session and psn_no.
#[derive(Debug, Clone)]
pub struct Who {
    /// `session_id` of `identity.lookup`.
    pub session: String,
    /// The person.
    pub psn_no: String,
}

/// Looks up the simulator's person `idx` by ID card (`business_type` 01301).
pub async fn who(t: &Terminal, c: &mut Client, idx: usize) -> Who {
    let (certno, name) = t.sim.sim.with_state(|s| {
        let p = &s.accounts[idx].person;
        (p.certno.clone(), p.name.to_string())
    });
    let r = c
        .call(
            "identity.lookup",
            json!({"business_type": "01301", "credential": {"type": "id_card", "certno": certno, "psn_name": name}}),
        )
        .await
        .expect("identity");
    Who {
        session: r["session_id"].as_str().expect("session").to_string(),
        psn_no: r["person"]["baseinfo"]["psn_no"]
            .as_str()
            .expect("psn_no")
            .to_string(),
    }
}

/// A pharmacy sale (2101/2102 input) of one line `feedetl_sn` for `amount` yuan.
pub fn pharmacy_sale(feedetl_sn: &str, amount: &str) -> Value {
    json!({
        "druginfo": {"begntime": "2026-11-23 10:00:00", "medfee_sumamt": amount, "acct_used_flag": "1", "med_type": "41"},
        "drugdetail": [{"feedetl_sn": feedetl_sn, "med_list_codg": "XA01", "det_item_fee_sumamt": amount, "cnt": 1, "pric": amount}],
    })
}

/// `txn.submit` of `infno` for `w`; the record or the error object.
pub async fn submit(
    c: &mut Client,
    w: &Who,
    client_ref: &str,
    infno: &str,
    input: Value,
) -> Result<Value, Value> {
    c.call(
        "txn.submit",
        json!({"client_ref": client_ref, "infno": infno, "session_id": w.session, "input": input}),
    )
    .await
}

/// `txn.submit` that must give a record in state `succeeded`.
pub async fn ok(c: &mut Client, w: &Who, client_ref: &str, infno: &str, input: Value) -> Value {
    let r = submit(c, w, client_ref, infno, input)
        .await
        .unwrap_or_else(|e| panic!("{client_ref}: {e}"));
    assert_eq!(r["state"], "succeeded", "{client_ref}: {r}");
    r
}

/// Whether a record's state is final (or handed to a person).
pub fn is_final(r: &Value) -> bool {
    ["succeeded", "failed", "reversed", "reversal_failed"]
        .contains(&r["state"].as_str().unwrap_or(""))
}

/// Polls `txn.get` until the record is final (at most `within`).
pub async fn final_record(c: &mut Client, client_ref: &str, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let r = c
            .call("txn.get", json!({"client_ref": client_ref}))
            .await
            .unwrap_or_else(|e| panic!("txn.get {client_ref}: {e}"));
        if is_final(&r) {
            return r;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{client_ref} not final after {within:?}: {r}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Settlements (not cancels) in effect whose fee lines include `feedetl_sn`.
pub fn active_with_line(l: &Ledger, feedetl_sn: &str) -> usize {
    l.settlements
        .iter()
        .filter(|s| {
            s.kind == RecordKind::Settlement
                && s.state == RecordState::Active
                && s.fee_lines.iter().any(|f| f == feedetl_sn)
        })
        .count()
}

/// The ledger state of the settlement the request `msgid` made, if any.
pub fn settlement_state(l: &Ledger, msgid: &str) -> Option<RecordState> {
    l.by_msgid(msgid).map(|s| s.state)
}

/// Registers an outpatient visit (2201) for `w`; its `mdtrt_id`.
pub async fn register(c: &mut Client, w: &Who, client_ref: &str, ipt_otp_no: &str) -> String {
    let r = ok(
        c,
        w,
        client_ref,
        "2201",
        json!({"data": {"insutype": "310", "begntime": "2026-11-23 09:00:00", "ipt_otp_no": ipt_otp_no, "atddr_no": "D1", "dr_name": "医生", "dept_code": "01", "dept_name": "内科", "caty": "A03"}}),
    )
    .await;
    r["output"]["data"]["mdtrt_id"]
        .as_str()
        .expect("mdtrt_id")
        .to_string()
}

/// Admits `w` to an inpatient stay (2401); its `mdtrt_id`.
pub async fn admit(c: &mut Client, w: &Who, client_ref: &str, ipt_no: &str) -> String {
    let r = ok(
        c,
        w,
        client_ref,
        "2401",
        json!({"mdtrtinfo": {"insutype": "310", "begntime": "2026-11-20 08:00:00", "med_type": "21", "ipt_no": ipt_no, "adm_dept_codg": "02", "adm_bed": "12"}, "diseinfo": []}),
    )
    .await;
    r["output"]["result"]["mdtrt_id"]
        .as_str()
        .expect("mdtrt_id")
        .to_string()
}
