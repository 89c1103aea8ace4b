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
