//! Operations: the fleet view names only metrics the daemon exports, and a
//! reload (SIGHUP) applies scanners, API origins, the log filter and gateway
//! timeouts without dropping a wait, a connection or a transaction in
//! flight; a bad file is refused and restart-only keys are named.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use settlement_sim::faults::{FaultKind, FaultRule};
use ybpos_e2e::{Options, Terminal, until_armed};

/// Metric families named in `text` (dashboard JSON or alert rules): every
/// `ybpos_…` and `process_…` token, histogram suffixes folded.
fn named_metrics(text: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"\b(ybpos|process)_[a-z0-9_]+").unwrap();
    re.find_iter(text)
        .map(|m| {
            let n = m.as_str();
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(n)
                .to_string()
        })
        .collect()
}

fn ops_file(rel: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

async fn scan_wait(
    t: &mut Terminal,
    c: &mut ybpos_e2e::Client,
    text: &str,
) -> Result<Value, Value> {
    let id = c
        .send(
            "scan.wait",
            json!({"business_type": "02121", "timeout_ms": 10000}),
        )
        .await;
    until_armed(&mut t.client().await).await;
    t.scan(text);
    c.answer(id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_alert_rules_name_only_metrics_the_daemon_exports() {
    let mut opts = Options::new(ybpos_e2e::daemon_bin!());
    opts.http = true;
    opts.log = "info".into();
    let mut t = Terminal::start(opts).await;
    // A scan: decode (1162) and 1101, so their latency series exist.
    let code = t.sim.sim.issue_code("0").unwrap();
    let mut c = t.client().await;
    scan_wait(&mut t, &mut c, &code.code)
        .await
        .expect("identity");
    let body = t.http().get("/metrics").await.body;
    let samples = ybpos_e2e::parse_prometheus(&body).unwrap_or_else(|e| panic!("{e}\n{body}"));
    let exported: BTreeSet<String> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect();
    for infno in ["1162", "1101", "9001"] {
        assert!(
            samples
                .iter()
                .any(|s| s.name == "ybpos_gateway_call_duration_seconds_count"
                    && s.label("infno") == Some(infno)
                    && s.value >= 1.0),
            "no latency for {infno}:\n{body}"
        );
    }
    let dashboard = ops_file("ops/grafana/ybpos.json");
    let _: Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let rules = ops_file("ops/prometheus/ybpos-rules.yml");
    for (file, text) in [
        ("ops/grafana/ybpos.json", &dashboard),
        ("ops/prometheus/ybpos-rules.yml", &rules),
    ] {
        let named = named_metrics(text);
        assert!(named.len() >= 4, "{file} names {named:?}");
        let missing: Vec<_> = named.difference(&exported).collect();
        assert!(
            missing.is_empty(),
            "{file} names metrics the daemon does not export: {missing:?}\nexported: {exported:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_live_and_refuses_a_bad_file() {
    let mut opts = Options::new(ybpos_e2e::daemon_bin!());
    opts.http = true;
    opts.log = "info".into();
    opts.request_timeout_ms = 5000;
    opts.dedupe_window_ms = 0;
    let mut t = Terminal::start(opts).await;
    let pid = nix::unistd::Pid::from_raw(t.pid().expect("pid"));
    let hup = || nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("SIGHUP");
    let http = t.http();
    let origin = "http://his.reload";
    let with_origin = |h: &ybpos_e2e::Http| {
        let h = h.clone();
        async move {
            h.post(
                r#"{"jsonrpc":"2.0","id":1,"method":"system.info"}"#,
                &[("origin", origin)],
            )
            .await
            .status
        }
    };
    assert_eq!(
        with_origin(&http).await,
        403,
        "not allowed before the reload"
    );

    // In flight across the reload: a wait on the scanner, a settlement the
    // gateway answers slowly, an idle connection.
    let (certno, name) = t.sim.sim.with_state(|s| {
        let p = &s.accounts[1].person;
        (p.certno.clone(), p.name.to_string())
    });
    let mut c = t.client().await;
    let who = c
        .call("identity.lookup", json!({"business_type": "02121", "credential": {"type": "id_card", "certno": certno, "psn_name": name}}))
        .await
        .expect("identity");
    t.sim
        .sim
        .add_fault(FaultRule::next("2102", FaultKind::Latency { ms: 1500 }));
    let mut payer = t.client().await;
    let sale = payer
        .send(
            "txn.submit",
            json!({"client_ref": "reload-1", "infno": "2102", "session_id": who["session_id"],
                   "input": {"druginfo": {"begntime": "2026-11-23 10:00:00", "medfee_sumamt": "12.00", "acct_used_flag": "1", "med_type": "41"},
                             "drugdetail": [{"feedetl_sn": "F1", "med_list_codg": "XA01", "det_item_fee_sumamt": "12.00", "cnt": 1, "pric": "12.00"}]}}),
        )
        .await;
    let mut waiter = t.client().await;
    let wait = waiter
        .send(
            "scan.wait",
            json!({"business_type": "02121", "timeout_ms": 30000}),
        )
        .await;
    until_armed(&mut t.client().await).await;
    let mut idle = t.client().await;

    // The change: an origin, a second scanner, the log filter, a timeout.
    let text = std::fs::read_to_string(&t.config).unwrap();
    let changed = text
        .replace(
            "[api]\n",
            &format!("[api]\nallowed_origins = [\"{origin}\"]\n"),
        )
        .replace("request_timeout_ms = 5000", "request_timeout_ms = 6000")
        + "\n[[scanner]]\nid = \"spare\"\ntransport = \"serial\"\npath = \"/dev/ybpos-no-such-tty\"\n\n[log]\nfilter = \"debug\"\n";
    std::fs::write(&t.config, &changed).unwrap();
    t.clear_logs();
    hup();
    let logs = until_log(&t, "Reloaded").await;
    for applied in [
        "api.allowed_origins",
        "scanner \"spare\" added",
        "gateway.request_timeout_ms 5000 → 6000",
        "log.filter = \"debug\"",
    ] {
        assert!(logs.contains(applied), "{applied} not in\n{logs}");
    }
    assert!(!logs.contains("only after a restart"), "{logs}");

    // Everything in flight went on.
    let r = payer.answer(sale).await.expect("the settlement");
    assert_eq!(r["state"], "succeeded", "{r}");
    let list = idle
        .call("scanner.list", json!({}))
        .await
        .expect("the idle connection is open");
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    assert_eq!(list[0]["id"], "counter");
    assert_eq!(
        list[0]["state"], "connected",
        "the unchanged scanner stayed open: {list}"
    );
    assert_eq!(list[0]["armed"], true, "the wait is still armed: {list}");
    assert_eq!(list[1]["state"], "absent");
    t.scan("134567890123456789");
    let e = waiter.answer(wait).await.unwrap_err();
    assert_eq!(
        e["data"]["kind"], "not_medical_code",
        "the wait armed before the reload got the scan: {e}"
    );
    assert_eq!(with_origin(&http).await, 200, "allowed after the reload");
    assert!(t.logs().contains("DEBUG"), "the debug filter is on");

    // A changed entry: its back end restarts with the new settings.
    let moved = changed.replace("/dev/ybpos-no-such-tty", "/dev/ybpos-other-tty");
    std::fs::write(&t.config, &moved).unwrap();
    t.clear_logs();
    hup();
    let logs = until_log(&t, "Reloaded").await;
    assert!(
        logs.contains("scanner \"spare\" restarted with new settings"),
        "{logs}"
    );
    assert!(
        !logs.contains("scanner \"counter\""),
        "the unchanged entry is not touched: {logs}"
    );
    let list = idle.call("scanner.list", json!({})).await.unwrap();
    assert_eq!(list[0]["state"], "connected", "{list}");

    // A bad file: refused, one line per problem, the old config stays.
    std::fs::write(&t.config, format!("{changed}\n[journal.x]\npaht = 1\n")).unwrap();
    t.clear_logs();
    hup();
    let logs = until_log(&t, "Reload refused").await;
    assert!(logs.contains("Config problem"), "{logs}");
    assert_eq!(with_origin(&http).await, 200, "the running config stays");
    assert!(idle.call("system.info", json!({})).await.is_ok());

    // A restart-only key: named, the rest applied.
    std::fs::write(
        &t.config,
        text.replace("opter           = \"t1\"", "opter           = \"t2\"")
            .replace("journal.db", "other.db"),
    )
    .unwrap();
    t.clear_logs();
    hup();
    let logs = until_log(&t, "only after a restart").await;
    // (opter_name follows opter when not set.)
    assert!(
        logs.contains("keys=terminal.opter, terminal.opter_name, journal.path"),
        "{logs}"
    );
    assert!(logs.contains("scanner \"spare\" removed"), "{logs}");
    assert_eq!(with_origin(&http).await, 403, "the origin is gone again");
    assert_eq!(t.stop().map(|s| s.code()), Some(Some(0)));
}

async fn until_log(t: &Terminal, needle: &str) -> String {
    for _ in 0..200 {
        let l = t.logs();
        if l.contains(needle) {
            // Let the rest of the reload's lines arrive.
            tokio::time::sleep(Duration::from_millis(100)).await;
            return t.logs();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {needle:?} in the logs:\n{}", t.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_names_a_frozen_journal_thread() {
    let mut opts = Options::new(ybpos_e2e::daemon_bin!());
    opts.http = true;
    opts.log = "info".into();
    let mut t = Terminal::start(opts).await;
    let http = t.http();
    let r = http.send("GET", "/healthz", &[], None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["journal"]["unresolved"], 0);
    t.stop();
    // The test build's hook: the journal thread stops taking jobs.
    t.spawn_daemon_env(&[("YBPOS_TEST_FREEZE_JOURNAL_AFTER_MS", "1500")]);
    t.wait_ready().await;
    let http = t.http();
    let mut last = String::new();
    for _ in 0..100 {
        let r = http.send("GET", "/healthz", &[], None).await;
        if r.status == 503 {
            assert!(
                r.json()["reason"]
                    .as_str()
                    .unwrap()
                    .contains("the journal thread did not answer"),
                "{}",
                r.body
            );
            // The scan hub and the API loop still answer: only the journal is named.
            assert!(
                !r.body.contains("scan hub") && !r.body.contains("API loop"),
                "{}",
                r.body
            );
            return;
        }
        last = r.body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/healthz never noticed the frozen journal: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_at_start_tells_systemd_to_wait_and_what_it_does() {
    let mut opts = Options::new(ybpos_e2e::daemon_bin!());
    opts.log = "info".into();
    let mut t = Terminal::start(opts).await;
    // A sale journaled as sent when the process dies: unresolved at the next start.
    let (certno, name) = t.sim.sim.with_state(|s| {
        let p = &s.accounts[0].person;
        (p.certno.clone(), p.name.to_string())
    });
    t.stop();
    t.spawn_daemon_env(&[("YBPOS_CRASH_AT", "after_sent")]);
    t.wait_ready().await;
    let mut c = t.client().await;
    let who = c
        .call("identity.lookup", json!({"business_type": "02121", "credential": {"type": "id_card", "certno": certno, "psn_name": name}}))
        .await
        .expect("identity");
    let _ = c
        .try_call(
            "txn.submit",
            json!({"client_ref": "recover-1", "infno": "2102", "session_id": who["session_id"],
                   "input": {"druginfo": {"begntime": "2026-11-23 10:00:00", "medfee_sumamt": "12.00", "acct_used_flag": "1", "med_type": "41"},
                             "drugdetail": [{"feedetl_sn": "F1", "med_list_codg": "XA01", "det_item_fee_sumamt": "12.00", "cnt": 1, "pric": "12.00"}]}}),
        )
        .await;
    assert!(
        t.wait_exit(Duration::from_secs(10)).is_some(),
        "the crash point killed it"
    );

    // systemd's side of the next start, through a notify socket of our own.
    let ns = t.dir.path().join("notify.sock");
    let sock = tokio::net::UnixDatagram::bind(&ns).unwrap();
    t.spawn_daemon_env(&[("NOTIFY_SOCKET", ns.to_str().unwrap())]);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    while !got
        .iter()
        .any(|m: &String| m.lines().any(|l| l == "READY=1"))
    {
        let n = tokio::time::timeout(Duration::from_secs(30), sock.recv(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no READY=1; got {got:?}\n{}", t.logs()))
            .unwrap();
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let all = got.join("\n");
    let recovering = got
        .iter()
        .position(|m| m.contains("EXTEND_TIMEOUT_USEC=15000000"))
        .unwrap_or_else(|| panic!("no EXTEND_TIMEOUT_USEC before READY: {got:?}"));
    assert!(
        got[recovering].contains("STATUS=recovering the journal: 1 unfinished transaction"),
        "{got:?}"
    );
    assert!(all.contains("STATUS=starting"), "{got:?}");
    assert!(
        recovering < got.len() - 1,
        "EXTEND_TIMEOUT_USEC came before READY=1: {got:?}"
    );
    t.wait_ready().await;
    assert_eq!(t.stop().map(|s| s.code()), Some(Some(0)));
}
