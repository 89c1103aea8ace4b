//! The crash test (issue: "the money engine", Must show).
//!
//! A cashier runs pharmacy sales (2102) and outpatient visits (2201 → 2204
//! → 2206 → 2207) against the simulator while the daemon is killed with
//! SIGKILL: at every crash point of the engine (each state transition of a
//! request and of its resolution, chained so recovery itself is killed too)
//! and at random moments. After each kill the daemon is restarted, recovery
//! runs, and the cashier does what an HIS does: asks for the record by its
//! `client_ref`, goes on when it succeeded, and tries the step again under a
//! new `client_ref` when it was reversed or failed.
//!
//! At the end, from the simulator's ledger and the journal: every record is
//! final, no settlement is in effect twice or without a succeeded record
//! (0 double charges), every record the cashier saw succeed is still
//! succeeded and in effect (0 lost acknowledged transactions), nothing needs
//! a person, and money is conserved.
//!
//! `YBPOS_CRASH_KILLS` sets the number of kills (default 1000, what CI runs;
//! `YBPOS_CRASH_KILLS=10000 cargo test -p ybpos-e2e --test crash -- --nocapture`
//! for the long run). `YBPOS_CRASH_SEED` fixes the random kill times.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use settlement_sim::ledger::RecordState;
use ybpos_e2e::{Client, Options, Terminal};

/// Every crash point of the engine, in the order a request meets them.
const REQUEST_POINTS: &[&str] = &[
    "before_journal",
    "after_journal",
    "after_sent",
    "after_send",
    "after_outcome",
];
/// Crash points of a resolution (2601 / undo / query), met after restart.
const RESOLUTION_POINTS: &[&str] = &["after_resolving", "after_resolve_send", "after_resolved"];

/// How the daemon is killed during one submit.
#[derive(Debug, Clone)]
enum Kill {
    /// At a crash point of the request; then each resolution point in turn.
    Points(&'static str, Vec<&'static str>),
    /// SIGKILL after this many microseconds.
    After(u64),
}

/// A small deterministic random source (xorshift), seeded from the env.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

struct Cashier {
    t: Terminal,
    rng: Rng,
    kills: u64,
    target: u64,
    plan: usize,
    /// Records the cashier saw succeed: client_ref → msgid.
    acknowledged: HashMap<String, String>,
    /// Every client_ref used.
    refs: Vec<String>,
    certno: HashMap<usize, String>,
}

fn is_final(s: &str) -> bool {
    ["succeeded", "failed", "reversed", "reversal_failed"].contains(&s)
}

impl Cashier {
    fn next_kill(&mut self) -> Kill {
        self.plan += 1;
        // Every other kill walks the crash points; the rest are random.
        if self.plan % 2 == 1 {
            let i = (self.plan / 2) % (REQUEST_POINTS.len() * (RESOLUTION_POINTS.len() + 1));
            let req = REQUEST_POINTS[i % REQUEST_POINTS.len()];
            let res = i / REQUEST_POINTS.len();
            Kill::Points(req, RESOLUTION_POINTS[..res].to_vec())
        } else {
            Kill::After(self.rng.next() % 40_000)
        }
    }

    async fn restart(&mut self, env: &[(&str, &str)]) {
        if self.t.is_running() {
            self.t.kill();
        }
        self.t.clear_logs();
        self.t.spawn_daemon_env(env);
    }

    async fn ready(&mut self) {
        let t0 = Instant::now();
        self.t.wait_ready().await;
        if std::env::var("YBPOS_CRASH_TIMING").is_ok() {
            eprintln!("ready in {:?}", t0.elapsed());
        }
    }

    /// Waits for the daemon to die at a crash point (true) or to resolve everything (false).
    async fn died_or_resolved(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if !self.t.is_running() {
                return true;
            }
            if let Ok(mut c) = Client::connect(&self.t.socket).await
                && let Some(Ok(info)) = c.try_call("system.info", json!({})).await
                && info["journal"]["unresolved"] == 0
            {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "the daemon neither died nor resolved; logs:\n{}",
            self.t.logs()
        );
    }

    /// Submits one step until it succeeds, surviving kills; returns the
    /// output and the attempt that succeeded.
    async fn step(
        &mut self,
        base: &str,
        infno: &str,
        input: &dyn Fn(u32) -> Value,
        admdvs: &str,
    ) -> (Value, u32) {
        let mut attempt = 0u32;
        loop {
            let client_ref = format!("{base}-a{attempt}");
            let params = json!({"client_ref": client_ref, "infno": infno, "insuplc_admdvs": admdvs, "input": input(attempt)});
            if !self.refs.contains(&client_ref) {
                self.refs.push(client_ref.clone());
            }
            let kill = if self.kills < self.target {
                Some(self.next_kill())
            } else {
                None
            };
            match &kill {
                Some(Kill::Points(p, _)) => {
                    self.restart(&[("YBPOS_CRASH_AT", p)]).await;
                    self.ready().await;
                }
                _ if !self.t.is_running() => {
                    self.restart(&[]).await;
                    self.ready().await;
                }
                _ => {}
            }
            let mut c = self.t.client().await;
            let killer = match &kill {
                Some(Kill::After(us)) => {
                    let pid = self.t.pid().expect("running");
                    let us = *us;
                    Some(tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_micros(us)).await;
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }))
                }
                _ => None,
            };
            let answer = c.try_call("txn.submit", params).await;
            if let Some(k) = killer {
                let _ = k.await;
                self.t.kill();
                self.kills += 1;
            }
            let mut died = match &kill {
                Some(Kill::Points(..)) => !self.t.is_running() || answer.is_none(),
                _ => answer.is_none(),
            };
            if let Some(Kill::Points(_, chain)) = &kill {
                if died {
                    let _ = self.t.wait_exit(Duration::from_secs(5));
                    self.kills += 1;
                    // Kill recovery at each resolution point in turn.
                    for p in chain.clone() {
                        self.restart(&[("YBPOS_CRASH_AT", p)]).await;
                        if self.died_or_resolved().await {
                            let _ = self.t.wait_exit(Duration::from_secs(5));
                            self.kills += 1;
                        } else {
                            break;
                        }
                    }
                } else {
                    // The point was not on this request's path; restart clean.
                    self.t.kill();
                }
                died = true;
            }
            if died || !self.t.is_running() {
                self.restart(&[]).await;
                self.ready().await;
            }
            // What the HIS does after any trouble: wait until the daemon has
            // resolved everything, then look the record up.
            let t0 = Instant::now();
            self.t.wait_resolved(Duration::from_secs(30)).await;
            if std::env::var("YBPOS_CRASH_TIMING").is_ok() {
                eprintln!("resolved in {:?} ({kill:?})", t0.elapsed());
            }
            let mut c = self.t.client().await;
            let rec = match answer {
                Some(Ok(r)) if is_final(r["state"].as_str().unwrap_or("")) && !died => r,
                Some(Err(e)) if e["data"]["kind"] == "outcome_unknown" => continue,
                Some(Err(e)) if e["data"]["kind"] != "internal" => panic!("{client_ref}: {e}"),
                _ => match c.call("txn.get", json!({"client_ref": client_ref})).await {
                    Ok(r) => r,
                    // Killed before the record was journaled: nothing happened; resubmit.
                    Err(_) => continue,
                },
            };
            let state = rec["state"].as_str().unwrap().to_string();
            assert!(
                is_final(&state),
                "{client_ref} not final after resolution: {rec}"
            );
            match state.as_str() {
                "succeeded" => {
                    self.acknowledged.insert(
                        client_ref.clone(),
                        rec["msgid"].as_str().unwrap().to_string(),
                    );
                    return (rec["output"].clone(), attempt);
                }
                "failed" if rec["error"]["kind"] == "gateway_unreachable" => {
                    // Never sent (e.g. killed before the post): the same client_ref sends it.
                    continue;
                }
                "failed" | "reversed" => attempt += 1,
                other => panic!("{client_ref}: {other}: {rec}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kills_at_every_transition_and_at_random_lose_nothing_and_charge_nothing_twice() {
    let target: u64 = std::env::var("YBPOS_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let seed: u64 = std::env::var("YBPOS_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_cafe);
    let mut opts = Options::new(ybpos_e2e::daemon_bin!());
    opts.request_timeout_ms = 2000;
    // A killed daemon's request is processed at once or never by the
    // simulator, so a short grace is enough here.
    opts.journal_toml = "reversal_grace_ms = 300".into();
    opts.log = "info".into();
    let t = Terminal::start(opts).await;
    let certno: HashMap<usize, String> = t.sim.sim.with_state(|s| {
        (0..4)
            .map(|i| (i, s.accounts[i].person.certno.clone()))
            .collect()
    });
    let started = Instant::now();
    let mut cashier = Cashier {
        t,
        rng: Rng(seed | 1),
        kills: 0,
        target,
        plan: 0,
        acknowledged: HashMap::new(),
        refs: Vec::new(),
        certno,
    };
    let pharmacy_psn = "42000000000000000001";
    let otp_psn = "11000000000000000003";
    let mut sale = 0u32;
    while cashier.kills < target {
        sale += 1;
        if sale % 2 == 1 {
            // Pharmacy sale: one 2102.
            let cert = cashier.certno[&0].clone();
            let amt = format!("{}.{:02}", 1 + sale % 20, sale % 100);
            let input = |a: u32| {
                json!({
                    "druginfo": {"psn_no": pharmacy_psn, "mdtrt_cert_type": "02", "mdtrt_cert_no": cert, "begntime": "2026-11-23 10:00:00",
                                 "medfee_sumamt": amt, "insutype": "310", "acct_used_flag": "1", "med_type": "41"},
                    "drugdetail": [{"feedetl_sn": format!("S{sale}-{a}"), "med_list_codg": "XA01", "det_item_fee_sumamt": amt, "cnt": 1, "pric": amt}],
                })
            };
            let _ = cashier
                .step(&format!("ph{sale}"), "2102", &input, "421381")
                .await;
        } else {
            // Outpatient visit: register, fees, pre-settle, settle.
            let cert = cashier.certno[&2].clone();
            let c2 = cert.clone();
            let reg = move |a: u32| {
                json!({"data": {"psn_no": otp_psn, "mdtrt_cert_type": "02", "mdtrt_cert_no": c2, "insutype": "310", "begntime": "2026-11-23 09:00:00",
                                "ipt_otp_no": format!("MZ{sale}-{a}"), "atddr_no": "D1", "dr_name": "医生", "dept_code": "01", "dept_name": "内科", "caty": "A03"}})
            };
            let (out, _) = cashier
                .step(&format!("op{sale}-reg"), "2201", &reg, "110105")
                .await;
            let mid = out["data"]["mdtrt_id"]
                .as_str()
                .expect("mdtrt_id")
                .to_string();
            let m2 = mid.clone();
            let fees = move |a: u32| {
                json!({"feedetail": [{"feedetl_sn": format!("L{a}"), "mdtrt_id": m2, "psn_no": otp_psn, "chrg_bchno": format!("B{a}"),
                                      "det_item_fee_sumamt": "12.30", "cnt": 1, "pric": "12.30", "med_list_codg": "X1"}]})
            };
            // The batch that ends up uploaded is the one the settlement names.
            let (_, batch) = cashier
                .step(&format!("op{sale}-fee"), "2204", &fees, "110105")
                .await;
            let settle = move |_a: u32| {
                json!({"data": {"psn_no": otp_psn, "mdtrt_cert_type": "02", "mdtrt_cert_no": cert, "med_type": "11", "medfee_sumamt": "12.30",
                                "psn_setlway": "01", "mdtrt_id": mid, "chrg_bchno": format!("B{batch}"), "insutype": "310", "acct_used_flag": "1"}})
            };
            let _ = cashier
                .step(&format!("op{sale}-pre"), "2206", &settle, "110105")
                .await;
            let _ = cashier
                .step(&format!("op{sale}-setl"), "2207", &settle, "110105")
                .await;
        }
    }

    // Everything settles, then the proof.
    let t = &mut cashier.t;
    if !t.is_running() {
        t.spawn_daemon();
        t.wait_ready().await;
    }
    let info = t.wait_resolved(Duration::from_secs(60)).await;
    assert_eq!(
        info["journal"]["reversal_failed"], 0,
        "nothing needs a person"
    );
    let mut c = t.client().await;
    let ledger = t.sim.sim.ledger();
    ledger
        .check()
        .unwrap_or_else(|p| panic!("money not conserved: {p:?}"));
    let mut succeeded_msgids = HashSet::new();
    let mut settlements = 0;
    for r in &cashier.refs {
        let Ok(rec) = c.call("txn.get", json!({"client_ref": r})).await else {
            continue;
        };
        let state = rec["state"].as_str().unwrap();
        assert!(is_final(state), "{r} is {state}");
        let msgid = rec["msgid"].as_str().unwrap();
        let in_ledger = ledger.by_msgid(msgid);
        if rec["infno"] == "2102" || rec["infno"] == "2207" {
            settlements += 1;
            match state {
                "succeeded" => {
                    assert_eq!(
                        in_ledger.map(|s| &s.state),
                        Some(&RecordState::Active),
                        "{r}: succeeded but not in effect"
                    );
                    succeeded_msgids.insert(msgid.to_string());
                }
                _ => assert!(
                    in_ledger.is_none_or(|s| s.state == RecordState::Reversed),
                    "{r}: {state} but the gateway holds it: {:?}",
                    in_ledger.map(|s| &s.state)
                ),
            }
        }
    }
    // 0 double charges: every settlement in effect belongs to exactly one
    // succeeded record, and each sale has exactly one.
    for s in ledger
        .settlements
        .iter()
        .filter(|s| s.state == RecordState::Active)
    {
        assert!(
            succeeded_msgids.contains(&s.msgid),
            "settlement {} ({}) in effect without a succeeded record",
            s.setl_id,
            s.msgid
        );
    }
    let sales_done = cashier
        .acknowledged
        .keys()
        .filter(|k| k.starts_with("ph") || k.contains("-setl"))
        .count();
    assert_eq!(
        succeeded_msgids.len(),
        sales_done,
        "one settlement per sale"
    );
    // 0 lost acknowledged transactions.
    for (r, msgid) in &cashier.acknowledged {
        let rec = c.call("txn.get", json!({"client_ref": r})).await.unwrap();
        assert_eq!(rec["state"], "succeeded", "{r} was acknowledged");
        assert_eq!(rec["msgid"].as_str().unwrap(), msgid);
    }
    println!(
        "crash test: {} kills, {} sales, {} settlement records, {} client_refs, {:.1} s",
        cashier.kills,
        sale,
        settlements,
        cashier.refs.len(),
        started.elapsed().as_secs_f64()
    );
}
