//! How long an unknown outcome stays unknown: from `txn.submit` answering
//! `unknown` (the gateway committed a 2102 and the answer was lost) to the
//! record's final state, with the simulator answering at once. Undos wait
//! out the grace period first, so the goal is grace + at most 1 s.
//!
//! Run: `cargo bench -p ybpos-daemon --bench resolve_latency`
//! (`YBPOS_BENCH_GRACE_MS`, default 1000; `YBPOS_BENCH_RUNS`, default 20).
//! Not a test: it prints figures.

#![allow(missing_docs)]

mod common;

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use settlement_client::auth::Signer;
use settlement_sim::faults::{FaultKind, FaultRule};
use settlement_sim::{SimSettings, Simulator};
use ybpos_daemon::engine::Submit;
use ybpos_daemon::engine::machine::State;
use ybpos_daemon::events::{Event, EventBus};

fn env(k: &str, default: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn sale(n: u64, certno: &str) -> Submit {
    let amt = format!("{}.{:02}", 1 + n % 50, n % 100);
    let input: Map<String, Value> = serde_json::from_value(json!({
        "druginfo": {"psn_no": "42000000000000000001", "mdtrt_cert_type": "02", "mdtrt_cert_no": certno,
                     "medfee_sumamt": amt, "insutype": "310", "med_type": "41", "acct_used_flag": "0"},
        "drugdetail": [{"feedetl_sn": format!("B{n}"), "med_list_codg": "X01", "det_item_fee_sumamt": amt}],
    }))
    .unwrap();
    Submit {
        client_ref: format!("bench-{n}"),
        infno: "2102".into(),
        session_id: None,
        insuplc_admdvs: Some("421381".into()),
        input,
    }
}

fn percentile(v: &[Duration], q: f64) -> Duration {
    v[((v.len() as f64 - 1.0) * q) as usize]
}

fn main() {
    let grace = Duration::from_millis(env("YBPOS_BENCH_GRACE_MS", 1000));
    let runs = env("YBPOS_BENCH_RUNS", 20);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let sim = Simulator::new(SimSettings::default(), Signer::None)
            .bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let certno = sim.sim.with_state(|s| s.accounts[0].person.certno.clone());
        let events = EventBus::default();
        let e = common::engine(&sim.base_url(), dir.path(), grace, events.clone()).await;

        // One at a time.
        let mut took = Vec::new();
        for n in 0..runs {
            sim.sim
                .add_fault(FaultRule::next("2102", FaultKind::CommitThenDrop));
            let mut rx = events.subscribe();
            let r = e.submit(sale(n, &certno)).await.unwrap();
            assert_eq!(r.state, State::Unknown);
            let t0 = Instant::now();
            loop {
                if let Event::Txn { txn_id, state, .. } = &*rx.recv().await.unwrap()
                    && *txn_id == r.txn_id
                    && state.is_final()
                {
                    assert_eq!(*state, State::Reversed);
                    break;
                }
            }
            took.push(t0.elapsed());
        }
        took.sort();
        let over = |d: Duration| d.saturating_sub(grace);
        println!(
            "unknown → final, one at a time ({runs} runs, grace {grace:?}): p50 {:?} (grace + {:?})  p99 {:?} (grace + {:?})  max {:?}",
            percentile(&took, 0.5),
            over(percentile(&took, 0.5)),
            percentile(&took, 0.99),
            over(percentile(&took, 0.99)),
            took[took.len() - 1],
        );

        // Sixteen at once: resolved concurrently, not one after another.
        let burst = 16;
        sim.sim.add_fault(
            FaultRule::next("2102", FaultKind::CommitThenDrop).times(burst as u32),
        );
        let mut rx = events.subscribe();
        let mut ids = std::collections::HashSet::new();
        for n in 0..burst {
            let r = e.submit(sale(runs + 1 + n, &certno)).await.unwrap();
            assert_eq!(r.state, State::Unknown);
            ids.insert(r.txn_id);
        }
        let t0 = Instant::now();
        let mut last = Duration::ZERO;
        while !ids.is_empty() {
            if let Event::Txn { txn_id, state, .. } = &*rx.recv().await.unwrap()
                && state.is_final()
                && ids.remove(txn_id)
            {
                last = t0.elapsed();
            }
        }
        println!(
            "unknown → final, {burst} at once: the last final after {last:?} (grace + {:?})",
            over(last)
        );
        e.shutdown().await;
        sim.shutdown().await;
    });
}
