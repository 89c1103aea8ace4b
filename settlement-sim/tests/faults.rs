//! Every simulator fault against the client: the outcome class the client
//! reports, what the platform actually did (the ledger), and that 2601 then
//! brings the books back, with money conserved throughout.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use settlement_client::auth::Signer;
use settlement_client::gateway::Gateway;
use settlement_client::reversal::ReversalAnswer;
use settlement_client::{Money, Outcome};
use settlement_sim::ledger::RecordState;
use settlement_sim::{FaultKind, FaultRule, RunningSim};
use ybpos_config::Profile;

/// A gateway that gives up after 800 ms and reads at most 64 KiB.
fn impatient(sim: &RunningSim) -> Gateway {
    let http = http(Duration::from_millis(800), 64 << 10, None);
    Gateway::new(
        settings(&sim.base_url(), Profile::FsiPaths, http, false),
        Signer::None,
    )
    .unwrap()
}

async fn setup() -> (RunningSim, Gateway, Who) {
    let sim = start(Signer::None).await;
    let g = impatient(&sim);
    let w = identify(&g, &sim, "0", "02121").await;
    (sim, g, w)
}

/// Waits (bounded) until the platform has committed `msgid`.
async fn committed(sim: &RunningSim, msgid: &str) -> bool {
    for _ in 0..100 {
        if sim.sim.ledger().by_msgid(msgid).is_some() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn unknown<T: std::fmt::Debug>(o: &Outcome<T>) {
    assert!(
        matches!(o, Outcome::Unknown { .. }),
        "expected Unknown, got {o:?}"
    );
}

#[tokio::test]
async fn faults_after_commit_are_unknown_and_reversal_restores_the_account() {
    let kinds = [
        FaultKind::CommitThenDrop,
        FaultKind::MalformedAfterCommit,
        FaultKind::TruncatedAfterCommit,
        FaultKind::OversizeAfterCommit { bytes: 200 << 10 },
        FaultKind::CommitThenDelay { ms: 1300 },
        FaultKind::Latency { ms: 1200 },
    ];
    let (sim, g, w) = setup().await;
    let start = sim.sim.ledger().balance(&w.psn_no).unwrap();
    for kind in kinds {
        assert!(kind.commits());
        sim.sim.add_fault(FaultRule::next("2102", kind.clone()));
        let (msgid, out) = send(&g, "2102", sale(&w, &["30.00"]), &w.admdvs).await;
        unknown(&out);
        assert!(committed(&sim, msgid.as_str()).await, "{kind:?} commits");
        let l = sim.sim.ledger();
        assert_eq!(l.balance(&w.psn_no), Some(start - Money(1500)), "{kind:?}");
        l.check().unwrap();
        // The engine's move: reverse exactly that msgid, until definitive.
        let ans = ReversalAnswer::of(&reverse(&g, &w, &msgid, "2102").await);
        assert_eq!(ans, ReversalAnswer::Reversed, "{kind:?}");
        let ans = ReversalAnswer::of(&reverse(&g, &w, &msgid, "2102").await);
        assert_eq!(ans, ReversalAnswer::AlreadyReversed, "{kind:?}");
        let l = sim.sim.ledger();
        assert_eq!(l.balance(&w.psn_no), Some(start), "{kind:?}");
        assert_eq!(
            l.by_msgid(msgid.as_str()).unwrap().state,
            RecordState::Reversed
        );
        l.check().unwrap();
    }
    assert_eq!(sim.sim.fired_faults().len(), 6);
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_before_commit_are_unknown_and_reversal_is_harmless() {
    let kinds = [
        FaultKind::Http5xx { status: 502 },
        FaultKind::Http5xx { status: 500 },
        FaultKind::ResetBeforeCommit,
        FaultKind::MalformedBeforeCommit,
    ];
    let (sim, g, w) = setup().await;
    let start = sim.sim.ledger().balance(&w.psn_no).unwrap();
    for kind in kinds {
        assert!(!kind.commits());
        sim.sim
            .add_fault(FaultRule::next("2207", FaultKind::CommitThenDrop));
        sim.sim.add_fault(FaultRule::next("2102", kind.clone()));
        let (msgid, out) = send(&g, "2102", sale(&w, &["30.00"]), &w.admdvs).await;
        unknown(&out);
        assert!(
            !sim.sim.with_state(|s| s.saw_msgid(msgid.as_str())),
            "{kind:?}"
        );
        assert!(sim.sim.ledger().by_msgid(msgid.as_str()).is_none());
        assert_eq!(sim.sim.ledger().balance(&w.psn_no), Some(start));
        let ans = ReversalAnswer::of(&reverse(&g, &w, &msgid, "2102").await);
        assert_eq!(ans, ReversalAnswer::NothingToReverse, "{kind:?}");
        assert!(ans.original_is_void());
        sim.sim.check_conservation().unwrap();
        sim.sim.clear_faults();
    }
    // Only the 2102 rules fired; the cleared 2207 rules never did.
    assert!(sim.sim.fired_faults().iter().all(|f| f.infno == "2102"));
    assert!(sim.sim.armed_faults().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_reversal_can_overtake_a_slow_original() {
    // The client times out at 800 ms; the platform processes at 1500 ms. A
    // reversal sent at once finds nothing, then the original commits: after
    // an Unknown, "原交易不存在" is only final once the original can no
    // longer arrive. Reversing again later finds and undoes it.
    let (sim, g, w) = setup().await;
    sim.sim
        .add_fault(FaultRule::next("2102", FaultKind::Latency { ms: 1500 }));
    let (msgid, out) = send(&g, "2102", sale(&w, &["10.00"]), &w.admdvs).await;
    unknown(&out);
    let first = ReversalAnswer::of(&reverse(&g, &w, &msgid, "2102").await);
    assert_eq!(first, ReversalAnswer::NothingToReverse);
    assert!(committed(&sim, msgid.as_str()).await);
    let again = ReversalAnswer::of(&reverse(&g, &w, &msgid, "2102").await);
    assert_eq!(again, ReversalAnswer::Reversed);
    sim.sim.check_conservation().unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn string_infcodes_and_gbk_bodies_are_read_exactly() {
    let (sim, g, w) = setup().await;
    sim.sim
        .add_fault(FaultRule::next("2102", FaultKind::InfcodeAsString));
    let (_, out) = send(&g, "2102", sale(&w, &["0.10", "0.20"]), &w.admdvs).await;
    let r = ok(out);
    assert_eq!(setl(&r, "medfee_sumamt"), "0.30");
    // A failure with a string infcode is still a definitive no.
    sim.sim
        .add_fault(FaultRule::next("2103", FaultKind::InfcodeAsString));
    let bad = json!({"data": {"setl_id": "nope", "mdtrt_id": "nope", "psn_no": w.psn_no}});
    let out = g.call("2103", bad.clone(), &w.admdvs).await;
    assert!(
        matches!(out, Outcome::Rejected { infcode: -1, .. }),
        "{out:?}"
    );
    // GBK: the Chinese text survives, success and failure alike.
    sim.sim
        .add_fault(FaultRule::next("2103", FaultKind::GbkBody));
    let msg = rejected(g.call("2103", bad, &w.admdvs).await);
    assert!(msg.contains("结算信息") && msg.contains("不存在"), "{msg}");
    sim.sim
        .add_fault(FaultRule::next("2101", FaultKind::GbkBody));
    let r = ok(g.call("2101", sale(&w, &["1.00"]), &w.admdvs).await);
    assert_eq!(r.output.unwrap()["setlinfo"]["psn_name"], "张三");
    sim.shutdown().await;
}

#[tokio::test]
async fn sign_in_faults_keep_the_link_offline_and_nothing_is_sent() {
    let sim = start(Signer::None).await;
    let g = impatient(&sim);
    sim.sim
        .add_fault(FaultRule::next("9001", FaultKind::Http5xx { status: 503 }));
    unknown(&g.sign_in().await);
    assert_eq!(g.state().borrow().as_str(), "offline");
    // A call whose sign-in fails never sends the call itself.
    sim.sim
        .add_fault(FaultRule::next("9001", FaultKind::ResetBeforeCommit));
    let out = g
        .call(
            "1101",
            json!({"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": "x"}}),
            "",
        )
        .await;
    assert!(matches!(out, Outcome::NotSent { .. }), "{out:?}");
    assert_eq!(sim.sim.calls("1101"), 0);
    // The next sign-in works.
    assert!(matches!(g.sign_in().await, Outcome::Ok(_)));
    assert_eq!(g.state().borrow().as_str(), "online");
    sim.shutdown().await;
}

#[tokio::test]
async fn control_api_arms_counts_lists_and_clears_faults_and_shows_the_ledger() {
    let (sim, g, w) = setup().await;
    let http = reqwest::Client::new();
    let root = sim.root_url();
    let r: Value = http
        .post(format!("{root}/sim/faults"))
        .body(r#"[{"infno":"1101","kind":"http5xx","times":2},{"infno":"5203","kind":"infcode_as_string"}]"#)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice::<Value>(&b).unwrap())
        .unwrap();
    assert_eq!(r["ids"].as_array().unwrap().len(), 2);
    let bad = http
        .post(format!("{root}/sim/faults"))
        .body(r#"{"kind":"explode"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let bad = http
        .post(format!("{root}/sim/faults"))
        .body(r#"{"kind":"http5xx","status":200}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let q = json!({"data": {"mdtrt_cert_type": "01", "mdtrt_cert_no": w.token}});
    unknown(&g.call("1101", q.clone(), "").await);
    let listed: Value = http
        .get(format!("{root}/sim/faults"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice::<Value>(&b).unwrap())
        .unwrap();
    assert_eq!(listed["armed"][0]["times"], 1, "{listed}");
    assert_eq!(listed["fired"][0]["kind"], "http5xx");
    unknown(&g.call("1101", q.clone(), "").await);
    ok(g.call("1101", q, "").await);
    let cleared: Value = http
        .delete(format!("{root}/sim/faults"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice::<Value>(&b).unwrap())
        .unwrap();
    assert!(cleared["armed"].as_array().unwrap().is_empty());
    // One sale, then the ledger over HTTP.
    let (msgid, out) = send(&g, "2102", sale(&w, &["8.88"]), &w.admdvs).await;
    ok(out);
    let l: Value = http
        .get(format!("{root}/sim/ledger"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice::<Value>(&b).unwrap())
        .unwrap();
    assert_eq!(l["conservation"]["ok"], true, "{l}");
    let s = &l["settlements"][0];
    assert_eq!(s["msgid"], msgid.as_str());
    assert_eq!(s["state"], "active");
    assert_eq!(s["split"]["medfee_sumamt"].to_string(), "8.88");
    let acct = l["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["psn_no"] == w.psn_no.as_str())
        .unwrap();
    assert_eq!(
        Money::from_json(&acct["initial"]).unwrap() - Money::from_json(&acct["current"]).unwrap(),
        Money::from_json(&s["split"]["acct_pay"]).unwrap()
    );
    let t: Value = http
        .get(format!("{root}/sim/traffic"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice::<Value>(&b).unwrap())
        .unwrap();
    assert_eq!(t["1101"], 4);
    sim.shutdown().await;
}
