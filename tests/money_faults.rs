//! Every simulator fault on every money-moving step ends in the right final
//! state, and the simulator's ledger proves it (issue: "the money engine",
//! Must show: fault test).
//!
//! For 2102 (pharmacy), 2207 (outpatient), 2304 (inpatient) and 2401
//! (admission): latency past the timeout (the original commits late, after
//! the first reversal attempt found nothing), HTTP 5xx, reset before commit,
//! commit then drop, malformed body before and after commit. Each ends
//! `reversed`; the ledger shows the settlement (or stay) reversed when the
//! gateway had committed it and absent when it had not; money is conserved
//! and every account is back where it started. A clean run of each step then
//! succeeds and shows up in the ledger.

use std::time::Duration;

use serde_json::{Value, json};
use settlement_sim::faults::{FaultKind, FaultRule};
use settlement_sim::ledger::{Ledger, RecordState, VisitState};
use ybpos_e2e::money::{Who, who};
use ybpos_e2e::{Client, Options, Terminal};

/// Request timeout of the daemon under test; the latency fault is longer.
const TIMEOUT_MS: u64 = 800;
/// The latency fault's delay: the original commits after the client gave up.
const LATENCY_MS: u64 = 1600;

fn faults() -> Vec<FaultKind> {
    vec![
        FaultKind::Latency { ms: LATENCY_MS },
        FaultKind::Http5xx { status: 502 },
        FaultKind::ResetBeforeCommit,
        FaultKind::CommitThenDrop,
        FaultKind::MalformedBeforeCommit,
        FaultKind::MalformedAfterCommit,
    ]
}

async fn submit(c: &mut Client, w: &Who, client_ref: &str, infno: &str, input: Value) -> Value {
    c.call(
        "txn.submit",
        json!({"client_ref": client_ref, "infno": infno, "session_id": w.session, "input": input}),
    )
    .await
    .unwrap_or_else(|e| panic!("{client_ref}: {e}"))
}

async fn ok(c: &mut Client, w: &Who, client_ref: &str, infno: &str, input: Value) -> Value {
    let r = submit(c, w, client_ref, infno, input).await;
    assert_eq!(r["state"], "succeeded", "{client_ref}: {r}");
    r
}

/// Polls `txn.get` until the record is final.
async fn final_record(c: &mut Client, client_ref: &str) -> Value {
    for _ in 0..600 {
        let r = c
            .call("txn.get", json!({"client_ref": client_ref}))
            .await
            .unwrap();
        if ["succeeded", "failed", "reversed", "reversal_failed"]
            .contains(&r["state"].as_str().unwrap())
        {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{client_ref} never became final");
}

/// What the ledger says about the request `msgid` of `infno`.
fn ledger_state(l: &Ledger, infno: &str, msgid: &str) -> Option<String> {
    if infno == "2401" {
        return l
            .visits
            .iter()
            .find(|v| v.opened_by == msgid)
            .map(|v| match &v.state {
                VisitState::Open => "active".to_string(),
                VisitState::Reversed(_) => "reversed".into(),
                VisitState::Cancelled(_) => "cancelled".into(),
            });
    }
    l.by_msgid(msgid).map(|s| match s.state {
        RecordState::Active => "active".to_string(),
        RecordState::Reversed => "reversed".into(),
        RecordState::Cancelled => "cancelled".into(),
    })
}

/// Runs every fault on `infno`, building each request with `make(i)`.
async fn every_fault(
    t: &Terminal,
    c: &mut Client,
    w: &Who,
    infno: &str,
    make: &dyn Fn(usize) -> Value,
) {
    for (i, kind) in faults().into_iter().enumerate() {
        let commits = kind.commits();
        t.sim.sim.add_fault(FaultRule::next(infno, kind.clone()));
        let cref = format!("{infno}-fault-{i}");
        let first = submit(c, w, &cref, infno, make(i)).await;
        assert!(
            ["unknown", "reversing"].contains(&first["state"].as_str().unwrap()),
            "{cref} ({kind:?}) first answer: {first}"
        );
        let r = final_record(c, &cref).await;
        assert_eq!(r["state"], "reversed", "{cref} ({kind:?}): {r}");
        let msgid = r["msgid"].as_str().unwrap();
        let l = t.sim.sim.ledger();
        let seen = ledger_state(&l, infno, msgid);
        if commits {
            assert_eq!(
                seen.as_deref(),
                Some("reversed"),
                "{cref} ({kind:?}) committed, so it must be reversed"
            );
            assert_eq!(r["reversal"]["state"], "succeeded", "{cref}: {r}");
        } else {
            assert_eq!(seen, None, "{cref} ({kind:?}) never committed");
        }
        l.check()
            .unwrap_or_else(|p| panic!("{cref}: money not conserved: {p:?}"));
        assert_eq!(
            l.balance(&w.psn_no),
            l.accounts
                .iter()
                .find(|a| a.psn_no == w.psn_no)
                .map(|a| a.initial)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fault_on_every_money_step_ends_right() {
    let mut opts = Options::new(ybpos_e2e::daemon_bin!());
    opts.request_timeout_ms = TIMEOUT_MS;
    // Longer than the latency fault: "nothing to reverse" is believed only
    // once a late original can no longer arrive.
    opts.journal_toml = format!("reversal_grace_ms = {}", LATENCY_MS + 700);
    opts.dedupe_window_ms = 0;
    let t = Terminal::start(opts).await;

    let pharmacy = async {
        let mut c = t.client().await;
        let w = who(&t, &mut c, 0).await;
        let sale = |i: usize| {
            let amt = format!("{}.{:02}", 10 + i, i);
            json!({
                "druginfo": {"begntime": "2026-11-23 10:00:00", "medfee_sumamt": amt, "acct_used_flag": "1", "med_type": "41"},
                "drugdetail": [{"feedetl_sn": format!("F{i}"), "med_list_codg": "XA01", "det_item_fee_sumamt": amt, "cnt": 1, "pric": amt}],
            })
        };
        every_fault(&t, &mut c, &w, "2102", &sale).await;
        let r = ok(&mut c, &w, "2102-clean", "2102", sale(99)).await;
        let l = t.sim.sim.ledger();
        assert_eq!(
            ledger_state(&l, "2102", r["msgid"].as_str().unwrap()).as_deref(),
            Some("active")
        );
    };

    let outpatient = async {
        let mut c = t.client().await;
        let w = who(&t, &mut c, 2).await;
        let reg = ok(
            &mut c,
            &w,
            "2201-reg",
            "2201",
            json!({"data": {"insutype": "310", "begntime": "2026-11-23 09:00:00", "ipt_otp_no": "MZ-F", "atddr_no": "D1", "dr_name": "医生", "dept_code": "01", "dept_name": "内科", "caty": "A03"}}),
        )
        .await;
        let mid = reg["output"]["data"]["mdtrt_id"]
            .as_str()
            .unwrap()
            .to_string();
        let batches = faults().len() + 1;
        let lines: Vec<Value> = (0..batches)
            .map(|i| json!({"feedetl_sn": format!("L{i}"), "mdtrt_id": mid, "chrg_bchno": format!("B{i}"), "det_item_fee_sumamt": "30.00", "cnt": 1, "pric": "30.00", "med_list_codg": "X1"}))
            .collect();
        ok(&mut c, &w, "2204-fees", "2204", json!({"feedetail": lines})).await;
        let settle = |i: usize| json!({"data": {"med_type": "11", "medfee_sumamt": "30.00", "psn_setlway": "01", "mdtrt_id": mid, "chrg_bchno": format!("B{i}"), "insutype": "310", "acct_used_flag": "1"}});
        every_fault(&t, &mut c, &w, "2207", &settle).await;
        let r = ok(&mut c, &w, "2207-clean", "2207", settle(batches - 1)).await;
        let l = t.sim.sim.ledger();
        assert_eq!(
            ledger_state(&l, "2207", r["msgid"].as_str().unwrap()).as_deref(),
            Some("active")
        );
    };

    let inpatient = async {
        let mut c = t.client().await;
        let w = who(&t, &mut c, 3).await;
        let adm = ok(
            &mut c,
            &w,
            "2401-stay",
            "2401",
            json!({"mdtrtinfo": {"insutype": "310", "begntime": "2026-11-20 08:00:00", "med_type": "21", "ipt_no": "ZY-F", "adm_dept_codg": "02", "adm_bed": "12"}, "diseinfo": []}),
        )
        .await;
        let iid = adm["output"]["result"]["mdtrt_id"]
            .as_str()
            .unwrap()
            .to_string();
        ok(
            &mut c,
            &w,
            "2301-fees",
            "2301",
            json!({"feedetail": [{"feedetl_sn": "1", "mdtrt_id": iid, "det_item_fee_sumamt": "800.00", "med_list_codg": "Y1"}]}),
        )
        .await;
        ok(
            &mut c,
            &w,
            "2402-dscg",
            "2402",
            json!({"dscginfo": {"mdtrt_id": iid, "insutype": "310", "endtime": "2026-11-23 09:00:00", "dscg_way": "1"}, "diseinfo": []}),
        )
        .await;
        let settle = |_i: usize| json!({"data": {"medfee_sumamt": "800.00", "psn_setlway": "01", "mdtrt_id": iid, "insutype": "310", "acct_used_flag": "1", "mid_setl_flag": "0"}});
        every_fault(&t, &mut c, &w, "2304", &settle).await;
        let r = ok(&mut c, &w, "2304-clean", "2304", settle(0)).await;
        let l = t.sim.sim.ledger();
        assert_eq!(
            ledger_state(&l, "2304", r["msgid"].as_str().unwrap()).as_deref(),
            Some("active")
        );
    };

    let admission = async {
        let mut c = t.client().await;
        let w = who(&t, &mut c, 1).await;
        let admit = |i: usize| json!({"mdtrtinfo": {"insutype": "390", "begntime": "2026-11-21 08:00:00", "med_type": "21", "ipt_no": format!("ZY-A{i}"), "adm_dept_codg": "03", "adm_bed": "7"}, "diseinfo": []});
        every_fault(&t, &mut c, &w, "2401", &admit).await;
        let r = ok(&mut c, &w, "2401-clean", "2401", admit(99)).await;
        let l = t.sim.sim.ledger();
        assert_eq!(
            ledger_state(&l, "2401", r["msgid"].as_str().unwrap()).as_deref(),
            Some("active")
        );
    };

    // Faults are armed per infno, so groups that share an infno (the stay's
    // own 2401) must not overlap: the admission group runs last.
    tokio::join!(pharmacy, outpatient, inpatient);
    admission.await;

    // Nothing left to resolve, nothing needing a person, books balanced.
    let info = t.wait_resolved(Duration::from_secs(10)).await;
    assert_eq!(info["journal"]["reversal_failed"], 0);
    t.sim.sim.check_conservation().unwrap();
    assert!(t.sim.sim.armed_faults().is_empty(), "every fault fired");
}
