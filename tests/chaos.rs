//! The chaos test (issue "money safety in the real world", Must show).
//!
//! Three terminals of one institution — three daemons with their own
//! journals, one `fixmedins_code`, `msgid_node` 0, 1, 2 — share one
//! simulated gateway. Each has four HIS clients that behave as real HIS
//! do: they sell the terminal's sales under new `client_ref`s after any
//! answer, resubmit old `client_ref`s after newer attempts, cancel what
//! settled and sell it again, and upload outpatient fee lines. Meanwhile:
//! faults on the originals **and** on 2601 and the fee query (latency past
//! the timeout, resets before and after commit, 5xx, malformed bodies,
//! refusals in words the engine does not know, 4xx and `infcode -1` after a
//! commit, answers without their list, commits that land after the client
//! gave up), a lax gateway that answers 2601 of unknown msgids with success,
//! wall-clock steps of the daemons (libfaketime, where installed), and
//! SIGKILLs at random and at the engine's crash points.
//!
//! At the end, from the simulator's ledger and the journals: no sale has
//! two settlements in effect, no reversal undid another terminal's msgid,
//! no fee line was cancelled (nobody asked for it), no acknowledged record
//! was lost, every record is final or with a person, every record tells
//! the truth about the gateway, and money is conserved.
//!
//! `YBPOS_CHAOS_KILLS` sets the number of kills (default 1000, what CI
//! runs); the long run: `YBPOS_CHAOS_KILLS=10000 cargo test -p ybpos-e2e
//! --test chaos -- --nocapture`. `YBPOS_CHAOS_SEED` fixes the randomness.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use settlement_sim::faults::{FaultKind, FaultRule};
use settlement_sim::ledger::{FeeState, RecordKind, RecordState, VisitKind};
use ybpos_e2e::{Client, Options, Terminal};

const PCS: usize = 3;
const CLIENTS: usize = 4;
const SALES_PER_PC: usize = 10;
const TIMEOUT_MS: u64 = 600;
const GRACE_MS: u64 = 2000;

/// Crash points of the engine (requests and resolutions).
const POINTS: &[&str] = &[
    "before_journal",
    "after_journal",
    "after_sent",
    "after_send",
    "after_outcome",
    "after_resolving",
    "after_resolve_send",
    "after_resolved",
];

/// A small deterministic random source (xorshift).
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A person of the simulator, as an HIS without a session sends them.
#[derive(Debug, Clone)]
struct Person {
    psn_no: String,
    certno: String,
    insutype: String,
    admdvs: String,
}

/// One sale of a terminal: a person and fee lines unique to it.
#[derive(Debug, Clone)]
struct Sale {
    line: String,
    amount: String,
    person: Person,
}

impl Sale {
    fn input(&self) -> Value {
        let p = &self.person;
        json!({
            "druginfo": {"psn_no": p.psn_no, "mdtrt_cert_type": "02", "mdtrt_cert_no": p.certno, "begntime": "2026-11-23 10:00:00",
                         "medfee_sumamt": self.amount, "insutype": p.insutype, "acct_used_flag": "0", "med_type": "41"},
            "drugdetail": [{"feedetl_sn": self.line, "med_list_codg": "XA01", "det_item_fee_sumamt": self.amount, "cnt": 1, "pric": self.amount}],
        })
    }
}

/// What a client saw for one `client_ref`.
#[derive(Debug, Clone)]
struct Seen {
    pc: usize,
    client_ref: String,
    infno: String,
    /// Sale line (2102, 2103) or fee line (2204).
    line: String,
    state: String,
    body: Value,
}

/// What the clients did, for the final checks.
#[derive(Debug, Default)]
struct Book {
    seen: HashMap<(usize, String), Seen>,
    answers: u64,
    refused: HashMap<String, u64>,
}

impl Book {
    fn note(&mut self, s: Seen) {
        self.answers += 1;
        let key = (s.pc, s.client_ref.clone());
        // Keep a succeeded answer: it is what the client acts on.
        if self.seen.get(&key).is_some_and(|o| o.state == "succeeded") {
            return;
        }
        self.seen.insert(key, s);
    }
}

/// libfaketime, where installed (Debian's `faketime`).
fn faketime_lib() -> Option<&'static str> {
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
}

/// One HIS client of terminal `pc`.
#[allow(clippy::too_many_arguments)]
async fn his(
    pc: usize,
    id: usize,
    socket: PathBuf,
    sales: Vec<Sale>,
    visit: (String, Person),
    book: Arc<Mutex<Book>>,
    stop: Arc<AtomicBool>,
    mut rng: Rng,
) {
    // client_refs of each sale, and the settlements this client knows of.
    let mut refs: HashMap<usize, Vec<String>> = HashMap::new();
    let mut settled: HashMap<usize, (String, String)> = HashMap::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let Ok(mut c) = Client::connect(&socket).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let s = rng.below(sales.len() as u64) as usize;
        let sale = &sales[s];
        let roll = rng.below(100);
        let (client_ref, infno, line, params) = if roll < 12 {
            // Upload an outpatient fee line (a lost upload must be found,
            // never undone batch-wide).
            let (mid, p) = &visit;
            let line = format!("P{pc}C{id}F{n}");
            let cref = format!("pc{pc}-c{id}-fee{n}");
            let input = json!({"feedetail": [{"feedetl_sn": line, "mdtrt_id": mid, "psn_no": p.psn_no, "chrg_bchno": format!("B{pc}{id}"),
                                               "det_item_fee_sumamt": "1.00", "cnt": 1, "pric": "1.00", "med_list_codg": "X1"}]});
            (
                cref.clone(),
                "2204",
                line,
                json!({"client_ref": cref, "infno": "2204", "insuplc_admdvs": p.admdvs, "input": input}),
            )
        } else if roll < 30
            && let Some((setl_id, mdtrt_id)) = settled.get(&s).cloned()
        {
            // Cancel what settled (then it may be sold again).
            let cref = format!("pc{pc}-c{id}-cancel{n}");
            let input = json!({"data": {"setl_id": setl_id, "mdtrt_id": mdtrt_id, "psn_no": sale.person.psn_no}});
            (
                cref.clone(),
                "2103",
                sale.line.clone(),
                json!({"client_ref": cref, "infno": "2103", "insuplc_admdvs": sale.person.admdvs, "input": input}),
            )
        } else if roll < 50
            && let Some(old) = refs.get(&s).filter(|v| !v.is_empty()).map(|v| {
                let i = rng.below(v.len() as u64) as usize;
                v[i].clone()
            })
        {
            // Resubmit an old attempt after newer ones.
            (
                old.clone(),
                "2102",
                sale.line.clone(),
                json!({"client_ref": old, "infno": "2102", "insuplc_admdvs": sale.person.admdvs, "input": sale.input()}),
            )
        } else {
            // Sell the sale (again) under a new client_ref.
            let cref = format!("pc{pc}-c{id}-s{s}-{n}");
            refs.entry(s).or_default().push(cref.clone());
            (
                cref.clone(),
                "2102",
                sale.line.clone(),
                json!({"client_ref": cref, "infno": "2102", "insuplc_admdvs": sale.person.admdvs, "input": sale.input()}),
            )
        };
        let answer =
            tokio::time::timeout(Duration::from_secs(20), c.try_call("txn.submit", params)).await;
        match answer {
            Ok(Some(Ok(rec))) => {
                let state = rec["state"].as_str().unwrap_or("").to_string();
                if state == "succeeded" {
                    match infno {
                        "2102" => {
                            let setl = &rec["output"]["setlinfo"];
                            settled.insert(
                                s,
                                (
                                    setl["setl_id"].as_str().unwrap_or("").into(),
                                    setl["mdtrt_id"].as_str().unwrap_or("").into(),
                                ),
                            );
                        }
                        "2103" => {
                            settled.remove(&s);
                        }
                        _ => {}
                    }
                }
                book.lock().unwrap().note(Seen {
                    pc,
                    client_ref,
                    infno: infno.into(),
                    line,
                    state,
                    body: rec,
                });
            }
            Ok(Some(Err(e))) => {
                let kind = e["data"]["kind"].as_str().unwrap_or("?").to_string();
                if kind == "already_settled"
                    && infno == "2102"
                    && let Some(Ok(rec)) = c
                        .try_call("txn.get", json!({"txn_id": e["data"]["txn_id"]}))
                        .await
                {
                    // As an HIS does: learn the settlement in effect, to cancel it.
                    let setl = &rec["output"]["setlinfo"];
                    if let (Some(id), Some(mid)) =
                        (setl["setl_id"].as_str(), setl["mdtrt_id"].as_str())
                    {
                        settled.insert(s, (id.to_string(), mid.to_string()));
                    }
                }
                assert!(
                    [
                        "already_settled",
                        "outcome_unknown",
                        "gateway_unreachable",
                        "internal",
                        "invalid_params"
                    ]
                    .contains(&kind.as_str()),
                    "{client_ref}: unexpected error {e}"
                );
                if kind == "invalid_params" {
                    // A cancel of a settlement cancelled by another client.
                    assert_eq!(infno, "2103", "{client_ref}: {e}");
                }
                *book.lock().unwrap().refused.entry(kind).or_default() += 1;
            }
            // The daemon went away (killed) or took too long: try something else.
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
        tokio::time::sleep(Duration::from_millis(rng.below(30))).await;
    }
}

/// Arms random faults on the shared gateway while the run lasts.
async fn faults(sim: settlement_sim::Simulator, stop: Arc<AtomicBool>, mut rng: Rng) {
    let unknown_texts = [
        "FSI-冲正失败:原交易正在处理中，请稍后再试",
        "FSI-系统繁忙",
        "FSI-冲正失败:数据库连接超时",
    ];
    while !stop.load(Ordering::Relaxed) {
        let infno = ["2102", "2102", "2103", "2204", "2601", "2601", "5204"][rng.below(7) as usize];
        let late = 300 + rng.below(900);
        let kind = match rng.below(12) {
            0 => FaultKind::Latency {
                ms: TIMEOUT_MS + 100 + rng.below(600),
            },
            1 => FaultKind::ResetBeforeCommit,
            2 => FaultKind::CommitThenDrop,
            3 => FaultKind::Http5xx { status: 502 },
            4 => FaultKind::MalformedAfterCommit,
            5 => FaultKind::MalformedBeforeCommit,
            6 => FaultKind::ResetThenLateCommit { ms: late },
            7 if infno == "2102" => FaultKind::CommitThenRefuse {
                err_msg: "FSI-结算失败，请重试".into(),
            },
            8 if infno == "2102" => FaultKind::CommitThenStatus { status: 429 },
            9 if infno == "2102" => FaultKind::CommitThenEmptyOk,
            10 if infno == "5204" => FaultKind::EmptyOk,
            _ => FaultKind::Refuse {
                err_msg: unknown_texts[rng.below(3) as usize].into(),
            },
        };
        sim.add_fault(FaultRule::next(infno, kind));
        tokio::time::sleep(Duration::from_millis(60 + rng.below(120))).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_terminals_many_cashiers_a_hostile_gateway_and_kills() {
    let target: u64 = std::env::var("YBPOS_CHAOS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let seed: u64 = std::env::var("YBPOS_CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0xc4a0_5eed);
    let mut rng = Rng(seed | 1);
    let faketime = faketime_lib();
    if faketime.is_none() {
        println!("chaos: libfaketime is not installed: no clock steps (apt-get install faketime)");
    }
    let clocks = tempfile::tempdir().unwrap();

    // Three terminals, one institution, one gateway.
    let mut pcs: Vec<Terminal> = Vec::new();
    for i in 0..PCS {
        let mut o = Options::new(ybpos_e2e::daemon_bin!());
        o.request_timeout_ms = TIMEOUT_MS;
        o.journal_toml = format!("reversal_grace_ms = {GRACE_MS}\nmax_unclear_answers = 4");
        o.terminal_toml = format!("terminals = {PCS}\nmsgid_node = {i}");
        o.log = "info".into();
        o.dedupe_window_ms = 0;
        if let Some(url) = pcs.first().map(|t: &Terminal| t.sim.base_url()) {
            o.gateway_url = Some(url);
        }
        if let Some(lib) = faketime {
            let clock = clocks.path().join(format!("pc{i}"));
            std::fs::write(&clock, "+0\n").unwrap();
            o.env = vec![
                ("LD_PRELOAD".into(), lib.into()),
                (
                    "FAKETIME_TIMESTAMP_FILE".into(),
                    clock.display().to_string(),
                ),
                ("FAKETIME_NO_CACHE".into(), "1".into()),
                ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
            ];
        }
        pcs.push(Terminal::start(o).await);
    }
    let sim = pcs[0].sim.sim.clone();
    sim.with_state(|s| s.settings.reverse_unknown_ok = true);
    let people: Vec<Person> = sim.with_state(|s| {
        s.accounts
            .iter()
            .map(|a| Person {
                psn_no: a.person.psn_no.to_string(),
                certno: a.person.certno.clone(),
                insutype: a.person.insurances[0].insutype.to_string(),
                admdvs: a.person.insurances[0].insuplc_admdvs.to_string(),
            })
            .collect()
    });

    // Each client has an outpatient visit for fee uploads (registered
    // before the chaos).
    let mut visits = HashMap::new();
    for (pc, t) in pcs.iter().enumerate() {
        let mut c = t.client().await;
        for id in 0..CLIENTS {
            let p = people[2].clone();
            let r = c
                .call(
                    "txn.submit",
                    json!({"client_ref": format!("pc{pc}-c{id}-reg"), "infno": "2201", "insuplc_admdvs": p.admdvs,
                           "input": {"data": {"psn_no": p.psn_no, "mdtrt_cert_type": "02", "mdtrt_cert_no": p.certno, "insutype": p.insutype,
                                              "begntime": "2026-11-23 09:00:00", "ipt_otp_no": format!("MZ-{pc}-{id}"), "atddr_no": "D1",
                                              "dr_name": "医生", "dept_code": "01", "dept_name": "内科", "caty": "A03"}}}),
                )
                .await
                .expect("registration");
            assert_eq!(r["state"], "succeeded", "{r}");
            let mid = r["output"]["data"]["mdtrt_id"]
                .as_str()
                .unwrap()
                .to_string();
            visits.insert((pc, id), (mid, p));
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let book = Arc::new(Mutex::new(Book::default()));
    let mut tasks = Vec::new();
    for (pc, t) in pcs.iter().enumerate() {
        let sales: Vec<Sale> = (0..SALES_PER_PC)
            .map(|s| Sale {
                line: format!("P{pc}S{s}"),
                amount: format!("{}.{:02}", 1 + s, 10 + pc),
                person: people[(pc + s) % people.len()].clone(),
            })
            .collect();
        for id in 0..CLIENTS {
            tasks.push(tokio::spawn(his(
                pc,
                id,
                t.socket.clone(),
                sales.clone(),
                visits[&(pc, id)].clone(),
                Arc::clone(&book),
                Arc::clone(&stop),
                Rng(rng.next() | 1),
            )));
        }
    }
    tasks.push(tokio::spawn(faults(
        sim.clone(),
        Arc::clone(&stop),
        Rng(rng.next() | 1),
    )));

    // The killer: SIGKILLs at random moments, and daemons started with a
    // crash point so they kill themselves at an engine transition.
    let started = Instant::now();
    let kills = AtomicU64::new(0);
    let mut self_kills = 0u64;
    let mut steps = 0u64;
    let mut crash_armed = [false; PCS];
    while kills.load(Ordering::Relaxed) < target {
        tokio::time::sleep(Duration::from_millis(30 + rng.below(150))).await;
        let pc = rng.below(PCS as u64) as usize;
        let t = &mut pcs[pc];
        if t.is_running() {
            if crash_armed[pc] && rng.below(3) > 0 {
                // Give the crash point a chance to fire.
                continue;
            }
            t.kill();
        } else {
            self_kills += u64::from(crash_armed[pc]);
        }
        kills.fetch_add(1, Ordering::Relaxed);
        t.clear_logs();
        if rng.below(2) == 0 {
            let point = format!(
                "{}:{}",
                POINTS[rng.below(POINTS.len() as u64) as usize],
                1 + rng.below(3)
            );
            t.spawn_daemon_env(&[("YBPOS_CRASH_AT", &point)]);
            crash_armed[pc] = true;
        } else {
            t.spawn_daemon();
            crash_armed[pc] = false;
        }
        if faketime.is_some() && rng.below(5) == 0 {
            // NTP steps the wall clock, forward or back.
            let offset = rng.below(2400) as i64 - 1200;
            let clock = clocks.path().join(format!("pc{}", rng.below(PCS as u64)));
            std::fs::write(clock, format!("{offset:+}\n")).unwrap();
            steps += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    sim.clear_faults();

    // Everything settles: every daemon up, without crash points, clocks right.
    for (i, t) in pcs.iter_mut().enumerate() {
        if faketime.is_some() {
            std::fs::write(clocks.path().join(format!("pc{i}")), "+0\n").unwrap();
        }
        t.kill();
        t.spawn_daemon();
    }
    let mut person_needed = Vec::new();
    for t in &pcs {
        t.wait_ready().await;
        t.wait_resolved(Duration::from_secs(120)).await;
        let mut c = t.client().await;
        let handed = c
            .call(
                "txn.list",
                json!({"state": "reversal_failed", "limit": 1000}),
            )
            .await
            .unwrap();
        for r in handed.as_array().unwrap() {
            person_needed.push(format!(
                "{} {} ({})",
                r["infno"], r["error"]["kind"], r["reversal"]["state"]
            ));
        }
    }
    // Late commits and lax answers are all in.
    tokio::time::sleep(Duration::from_millis(GRACE_MS)).await;
    let ledger = sim.ledger();
    ledger
        .check()
        .unwrap_or_else(|p| panic!("money not conserved: {p:?}"));

    // 0 sales with two settlements in effect.
    let mut in_effect: HashMap<String, Vec<String>> = HashMap::new();
    for s in ledger
        .settlements
        .iter()
        .filter(|s| s.kind == RecordKind::Settlement && s.state == RecordState::Active)
    {
        for f in &s.fee_lines {
            in_effect
                .entry(f.clone())
                .or_default()
                .push(s.msgid.clone());
        }
    }
    for (line, msgids) in &in_effect {
        assert!(
            msgids.len() <= 1,
            "sale {line} has {} settlements in effect: {msgids:?}",
            msgids.len()
        );
    }

    // 0 reversals of another terminal's msgid (node = sequence / 100).
    let node = |msgid: &str| msgid[26..].parse::<u32>().unwrap() / 100;
    let mut reversals = 0;
    for r in ledger.reversals.iter().filter(|r| r.ok) {
        if r.detail.contains("nothing reversed") {
            continue;
        }
        reversals += 1;
        assert_eq!(
            node(&r.omsgid),
            node(&r.msgid),
            "terminal {} reversed terminal {}'s msgid {}",
            node(&r.msgid),
            node(&r.omsgid),
            r.omsgid
        );
    }

    // 0 fee lines cancelled: nobody asked for a cancel of outpatient fee
    // lines (a pharmacy cancel, 2103, cancels its own sale's lines).
    let mut lines_up = HashSet::new();
    for v in ledger
        .visits
        .iter()
        .filter(|v| v.kind == VisitKind::Outpatient)
    {
        for f in &v.fees {
            assert_ne!(
                f.state,
                FeeState::Cancelled,
                "fee line {} was cancelled",
                f.feedetl_sn
            );
            lines_up.insert(f.feedetl_sn.clone());
        }
    }

    // Every record final (or with a person), 0 acknowledged records lost,
    // every record telling the truth about the gateway.
    let book = std::mem::take(&mut *book.lock().unwrap());
    let mut clients: Vec<Client> = Vec::new();
    for t in &pcs {
        clients.push(t.client().await);
    }
    let mut succeeded_2102: HashSet<String> = HashSet::new();
    let mut cancelled: HashSet<String> = HashSet::new();
    let mut records = 0;
    for ((pc, client_ref), seen) in book.seen.iter() {
        let rec = clients[*pc]
            .call("txn.get", json!({"client_ref": client_ref}))
            .await
            .unwrap_or_else(|e| panic!("{client_ref} was answered, then lost: {e}"));
        records += 1;
        let state = rec["state"].as_str().unwrap();
        assert!(
            ["succeeded", "failed", "reversed", "reversal_failed"].contains(&state),
            "{client_ref} is {state}"
        );
        if seen.state == "succeeded" {
            assert_eq!(state, "succeeded", "{client_ref} was acknowledged: {rec}");
            assert_eq!(rec["msgid"], seen.body["msgid"]);
        }
        let msgid = rec["msgid"].as_str().unwrap();
        match (seen.infno.as_str(), state) {
            ("2102", "succeeded") => {
                let s = ledger
                    .by_msgid(msgid)
                    .unwrap_or_else(|| panic!("{client_ref}: succeeded, not at the gateway"));
                assert_ne!(s.state, RecordState::Reversed, "{client_ref}: reversed");
                succeeded_2102.insert(msgid.to_string());
            }
            ("2102", "failed" | "reversed") => {
                let s = ledger.by_msgid(msgid);
                assert!(
                    s.is_none_or(|s| s.state == RecordState::Reversed),
                    "{client_ref}: {state} but in effect at the gateway: {rec}"
                );
            }
            ("2103", "succeeded") => {
                cancelled.insert(rec["output"]["setlinfo"]["setl_id"].to_string());
            }
            ("2204", "succeeded") => {
                assert!(lines_up.contains(&seen.line), "{client_ref}: upload lost");
            }
            ("2204", "failed" | "reversed") => {
                assert!(
                    !lines_up.contains(&seen.line),
                    "{client_ref}: {state} but the line is at the gateway"
                );
            }
            _ => {}
        }
    }
    // Every settlement in effect belongs to a succeeded record.
    for msgids in in_effect.values() {
        for m in msgids {
            let owner = node(m) as usize;
            if !succeeded_2102.contains(m) {
                // A record the clients never saw the answer of: ask its terminal.
                let found = clients[owner]
                    .call("txn.list", json!({"state": "succeeded", "limit": 1000}))
                    .await
                    .unwrap();
                assert!(
                    found
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|r| r["msgid"] == m.as_str()),
                    "settlement {m} in effect without a succeeded record"
                );
            }
        }
    }
    let kills = kills.load(Ordering::Relaxed);
    println!(
        "chaos: {kills} kills ({self_kills} at crash points), {steps} clock steps, {} answers, {records} records checked, \
         {} settlements in effect, {reversals} reversals, {} faults fired, handed to a person: {person_needed:?}, refused {:?}, {:.0} s",
        book.answers,
        in_effect.len(),
        sim.fired_faults().len(),
        book.refused,
        started.elapsed().as_secs_f64()
    );
    assert!(
        book.answers > kills / 2,
        "the clients did little: {}",
        book.answers
    );
}
