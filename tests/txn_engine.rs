//! The transaction engine through the API: idempotency, validation, session
//! filling, records, reports. (Money flows, faults and crashes: see
//! `money_faults.rs` and `crash.rs`.)

use serde_json::{Value, json};
use ybpos_e2e::{Options, Terminal};

async fn session(t: &Terminal) -> Value {
    let mut c = t.client().await;
    let (certno, name) = t.sim.sim.with_state(|s| {
        (
            s.accounts[0].person.certno.clone(),
            s.accounts[0].person.name.to_string(),
        )
    });
    c.call(
        "identity.lookup",
        json!({"business_type": "02121", "credential": {"type": "id_card", "certno": certno, "psn_name": name}}),
    )
    .await
    .expect("identity")
}

#[tokio::test(flavor = "multi_thread")]
async fn submit_is_idempotent_and_validated() {
    let t = Terminal::start(Options::new(ybpos_e2e::daemon_bin!())).await;
    let id = session(&t).await;
    let sid = id["session_id"].as_str().unwrap();
    let mut c = t.client().await;

    // 1101 through the engine, credential filled from the session.
    let r = c
        .call(
            "txn.submit",
            json!({"client_ref": "q-1", "infno": "1101", "session_id": sid, "input": {"data": {}}}),
        )
        .await
        .expect("record");
    assert_eq!(r["state"], "succeeded", "{r}");
    assert_eq!(
        r["output"]["baseinfo"]["psn_no"],
        id["person"]["baseinfo"]["psn_no"]
    );
    let msgid = r["msgid"].as_str().unwrap().to_string();
    assert_eq!(msgid.len(), 30);
    assert!(msgid.starts_with("P42130200001"));

    // Same client_ref, same body (keys in another order): same record, nothing resent.
    let again = c
        .call(
            "txn.submit",
            json!({"infno": "1101", "input": {"data": {}}, "session_id": sid, "client_ref": "q-1"}),
        )
        .await
        .unwrap();
    assert_eq!(again["txn_id"], r["txn_id"]);
    assert_eq!(again["msgid"], r["msgid"]);
    assert_eq!(again["attempts"], 1);

    // Same client_ref, different body: refused.
    let e = c
        .call("txn.submit", json!({"client_ref": "q-1", "infno": "1101", "session_id": sid, "input": {"data": {"begntime": "2026-01-01"}}}))
        .await
        .unwrap_err();
    assert_eq!(e["code"], 3001);
    assert_eq!(e["data"]["kind"], "duplicate_client_ref");

    // Required fields are named before anything is sent.
    let e = c
        .call(
            "txn.submit",
            json!({"client_ref": "s-1", "infno": "2103", "input": {"data": {"setl_id": "1"}}}),
        )
        .await
        .unwrap_err();
    assert_eq!(e["code"], -32602);
    assert_eq!(e["data"]["field"], "input.data.mdtrt_id");
    let e = c
        .call(
            "txn.submit",
            json!({"client_ref": "s-2", "infno": "2601", "input": {}}),
        )
        .await
        .unwrap_err();
    assert_eq!(e["data"]["field"], "infno");
    let e = c
        .call(
            "txn.submit",
            json!({"client_ref": "s-3", "infno": "7777", "input": {}}),
        )
        .await
        .unwrap_err();
    assert_eq!(e["data"]["field"], "infno");
    let e = c
        .call("txn.submit", json!({"client_ref": "s-4", "infno": "1101", "session_id": "ses_nope", "input": {"data": {}}}))
        .await
        .unwrap_err();
    assert_eq!(e["data"]["kind"], "session_expired");
    let e = c
        .call(
            "txn.submit",
            json!({"client_ref": "bad ref!", "infno": "1101", "input": {"data": {}}}),
        )
        .await
        .unwrap_err();
    assert_eq!(e["data"]["field"], "client_ref");

    // get / list.
    let g = c
        .call("txn.get", json!({"client_ref": "q-1"}))
        .await
        .unwrap();
    assert_eq!(g["txn_id"], r["txn_id"]);
    let g = c
        .call("txn.get", json!({"txn_id": r["txn_id"]}))
        .await
        .unwrap();
    assert_eq!(g["client_ref"], "q-1");
    let e = c
        .call("txn.get", json!({"client_ref": "nope"}))
        .await
        .unwrap_err();
    assert_eq!(e["code"], -32602);
    let l = c
        .call("txn.list", json!({"state": "succeeded"}))
        .await
        .unwrap();
    assert_eq!(l.as_array().unwrap().len(), 1);
    let e = c
        .call("txn.list", json!({"state": "weird"}))
        .await
        .unwrap_err();
    assert_eq!(e["data"]["field"], "state");

    let info = c.call("system.info", json!({})).await.unwrap();
    assert_eq!(info["journal"]["unresolved"], 0);

    // Records survive a restart.
    let mut t = t;
    assert!(t.stop().unwrap().success());
    t.spawn_daemon();
    t.wait_ready().await;
    let mut c = t.client().await;
    let g = c
        .call("txn.get", json!({"client_ref": "q-1"}))
        .await
        .unwrap();
    assert_eq!(g["msgid"].as_str().unwrap(), msgid);
    let rep = c
        .call(
            "report.usage",
            json!({"from": "2026-01-01", "to": "2026-12-31"}),
        )
        .await
        .unwrap();
    assert_eq!(rep["settlements"]["total"], 0);
    assert_eq!(rep["medical_code_rate"], 0.0);
}

/// One pharmacy sale for the session's person.
async fn sale(c: &mut ybpos_e2e::Client, client_ref: &str, sid: &str, amt: &str) -> Value {
    c.call(
        "txn.submit",
        json!({"client_ref": client_ref, "infno": "2102", "session_id": sid, "input": {
            "druginfo": {"begntime": "2026-11-23 10:00:00", "medfee_sumamt": amt, "acct_used_flag": "1", "med_type": "41"},
            "drugdetail": [{"feedetl_sn": client_ref, "med_list_codg": "XA01", "det_item_fee_sumamt": amt, "cnt": 1, "pric": amt}],
        }}),
    )
    .await
    .expect("record")
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_report_counts_settlements_by_credential_net_of_cancels() {
    let t = Terminal::start(Options::new(ybpos_e2e::daemon_bin!())).await;
    let mut c = t.client().await;
    // Two sales with the 医保码 (decoded QR), one with the ID card.
    let code = t.sim.sim.issue_code("0").unwrap();
    let qr = c
        .call(
            "identity.lookup",
            json!({"business_type": "02121", "credential": {"type": "qr", "value": code.code}}),
        )
        .await
        .unwrap();
    let qr_sid = qr["session_id"].as_str().unwrap().to_string();
    let card = session(&t).await;
    let card_sid = card["session_id"].as_str().unwrap().to_string();
    let a = sale(&mut c, "u-1", &qr_sid, "10.00").await;
    let b = sale(&mut c, "u-2", &qr_sid, "20.00").await;
    let d = sale(&mut c, "u-3", &card_sid, "30.00").await;
    for r in [&a, &b, &d] {
        assert_eq!(r["state"], "succeeded", "{r}");
    }
    // The same client_ref again is the same record, not a second sale.
    assert_eq!(
        sale(&mut c, "u-1", &qr_sid, "10.00").await["txn_id"],
        a["txn_id"]
    );
    // Cancel one 医保码 sale (2103): it no longer counts.
    let setl = &b["output"]["setlinfo"];
    let cancel = c
        .call(
            "txn.submit",
            json!({"client_ref": "u-2-cancel", "infno": "2103", "session_id": qr_sid,
                   "input": {"data": {"setl_id": setl["setl_id"], "mdtrt_id": setl["mdtrt_id"]}}}),
        )
        .await
        .unwrap();
    assert_eq!(cancel["state"], "succeeded", "{cancel}");
    let today = chrono_today();
    let rep = c
        .call("report.usage", json!({"from": today, "to": today}))
        .await
        .unwrap();
    assert_eq!(rep["settlements"]["total"], 2, "{rep}");
    assert_eq!(rep["settlements"]["by_cert_type"]["01"], 1);
    assert_eq!(rep["settlements"]["by_cert_type"]["02"], 1);
    assert_eq!(rep["medical_code_rate"], 0.5);
    assert_eq!(rep["by_day"][0]["date"], today);
    assert_eq!(rep["by_day"][0]["medical_code"], 1);
    let e = c
        .call("report.usage", json!({"from": today, "to": "2000-01-01"}))
        .await
        .unwrap_err();
    assert_eq!(e["data"]["field"], "to");
    t.sim.sim.check_conservation().unwrap();
}

fn chrono_today() -> String {
    let out = std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .expect("date");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
