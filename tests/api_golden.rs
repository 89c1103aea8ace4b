//! The local API's wire output, byte for byte, against a recorded golden set.
//!
//! A fixed script drives every method (and their errors) over the Unix
//! socket and a few over HTTP; each answer line is kept exactly as the
//! daemon sent it, then values that change from run to run (times, ids,
//! msgids, codes, tokens, paths) are replaced by numbered placeholders in
//! order of first appearance, so equal values stay visibly equal. The
//! result must equal `tests/golden/api.txt`. Refactorings must not change
//! it; a deliberate change of the API is recorded with
//! `YBPOS_UPDATE_GOLDEN=1 cargo test -p ybpos-e2e --test api_golden` and
//! reviewed in the diff.

use std::collections::HashMap;
use std::time::Duration;

use regex::Regex;
use serde_json::{Value, json};
use settlement_sim::faults::{FaultKind, FaultRule};
use ybpos_e2e::{Client, Options, Terminal, until_armed};

/// The recorded transcript.
struct Transcript {
    lines: Vec<String>,
}

impl Transcript {
    fn rec(&mut self, label: &str, raw: &str) {
        self.lines.push(format!("## {label}"));
        self.lines.push(raw.to_string());
    }
}

/// Replaces run-dependent values with numbered placeholders.
struct Normalizer {
    rules: Vec<(Regex, &'static str)>,
    seen: HashMap<(&'static str, String), usize>,
    next: HashMap<&'static str, usize>,
}

impl Normalizer {
    fn new(fixed: &[(&str, &'static str)]) -> Self {
        let mut rules: Vec<(Regex, &'static str)> = Vec::new();
        for (re, name) in [
            // Times: RFC 3339 with any precision and offset, and the
            // platform's "yyyy-MM-dd HH:mm:ss".
            (
                r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})",
                "time",
            ),
            (r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", "time"),
            (r"txn_\d{14}_[0-9a-f]{8}", "txn"),
            (r"ses_[0-9a-f]{24}", "session"),
            (r"/dev/pts/\d+", "pty"),
            (r"P42130200001\d{18}", "msgid"),
            // The simulator's ecTokens and ecIndexNos are random.
            (r"\d{6}ec[0-9a-z]{30}", "ectoken"),
            (r"\b[0-9A-F]{32}\b", "ecindex"),
            // Ages follow the calendar.
            (r#""age":\d+"#, "age"),
        ] {
            rules.push((Regex::new(re).unwrap(), name));
        }
        // Values of this run (paths, ports, the scanned code), after the
        // patterns above so they never split a time or an id.
        rules.extend(
            fixed
                .iter()
                .filter(|(s, _)| !s.is_empty())
                .map(|(s, name)| (Regex::new(&regex::escape(s)).unwrap(), *name)),
        );
        Normalizer {
            rules,
            seen: HashMap::new(),
            next: HashMap::new(),
        }
    }

    fn apply(&mut self, text: &str) -> String {
        let mut out = text.to_string();
        for i in 0..self.rules.len() {
            let re = self.rules[i].0.clone();
            let name = self.rules[i].1;
            out = re
                .replace_all(&out, |c: &regex::Captures<'_>| {
                    match name {
                        "time" => return "<time>".to_string(),
                        "age" => return "\"age\":<age>".to_string(),
                        _ => {}
                    }
                    let key = (name, c[0].to_string());
                    let n = match self.seen.get(&key) {
                        Some(n) => *n,
                        None => {
                            let n = self.next.entry(name).or_insert(0);
                            *n += 1;
                            self.seen.insert(key, *n);
                            *n
                        }
                    };
                    format!("<{name}#{n}>")
                })
                .into_owned();
        }
        out
    }
}

async fn wait_and_scan(t: &mut Terminal, bt: &str, text: &str) -> String {
    let mut waiter = t.client().await;
    let id = waiter
        .send(
            "scan.wait",
            json!({"business_type": bt, "timeout_ms": 10000}),
        )
        .await;
    let mut probe = t.client().await;
    until_armed(&mut probe).await;
    t.scan(text);
    loop {
        let line = waiter.read_line_raw().await.expect("answer");
        let m: Value = serde_json::from_str(&line).unwrap();
        if m["id"] == json!(id) {
            return line;
        }
    }
}

fn result(raw: &str) -> Value {
    let v: Value = serde_json::from_str(raw).unwrap();
    v["result"].clone()
}

/// Polls on a client of its own (so request ids on `c` stay fixed), then
/// reads the final record on `c`.
async fn final_raw(t: &Terminal, c: &mut Client, client_ref: &str) -> String {
    let mut probe = t.client().await;
    for _ in 0..400 {
        let r = probe
            .call("txn.get", json!({"client_ref": client_ref}))
            .await
            .unwrap();
        let st = r["state"].as_str().unwrap_or("");
        if ["succeeded", "failed", "reversed", "reversal_failed"].contains(&st) {
            return c
                .call_raw("txn.get", json!({"client_ref": client_ref}))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{client_ref} never became final");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_method_answers_as_recorded() {
    let mut opts = Options::new(ybpos_e2e::daemon_bin!());
    opts.http = true;
    opts.dedupe_window_ms = 0;
    opts.request_timeout_ms = 600;
    // Undos wait out the grace period: one 2601 each, short enough to wait.
    opts.journal_toml = "reversal_grace_ms = 1500".into();
    opts.log = "info".into();
    let mut t = Terminal::start(opts).await;
    let mut tr = Transcript { lines: Vec::new() };
    let mut c = t.client().await;

    // Events: every topic, read at the end.
    let mut ev = t.client().await;
    let raw = ev.call_raw("events.subscribe", json!({})).await;
    tr.rec("events.subscribe (all topics)", &raw);

    for (label, method, params) in [
        ("system.info", "system.info", json!({})),
        ("scanner.list", "scanner.list", json!({})),
        (
            "events.subscribe unknown topic",
            "events.subscribe",
            json!({"topics": ["scan", "weather"]}),
        ),
        (
            "events.subscribe topics not a list",
            "events.subscribe",
            json!({"topics": "scan"}),
        ),
        (
            "events.unsubscribe unknown",
            "events.unsubscribe",
            json!({"subscription": "sub99"}),
        ),
        ("scan.wait no business_type", "scan.wait", json!({})),
        (
            "scan.wait bad business_type",
            "scan.wait",
            json!({"business_type": "2121"}),
        ),
        (
            "scan.wait timeout too long",
            "scan.wait",
            json!({"business_type": "02121", "timeout_ms": 500000}),
        ),
        (
            "scan.wait timeout zero",
            "scan.wait",
            json!({"business_type": "02121", "timeout_ms": 0}),
        ),
        (
            "scan.wait unknown scanner",
            "scan.wait",
            json!({"business_type": "02121", "scanner": "nope"}),
        ),
        (
            "scan.wait times out",
            "scan.wait",
            json!({"business_type": "02121", "timeout_ms": 50}),
        ),
        ("demo.scan outside the demo", "demo.scan", json!({})),
        ("no such method", "no.such.method", json!({})),
    ] {
        let raw = c.call_raw(method, params).await;
        tr.rec(label, &raw);
    }

    // Bad lines.
    for (label, bytes) in [
        ("not JSON", &b"this is not json\n"[..]),
        (
            "JSON-RPC 1.0",
            &b"{\"jsonrpc\":\"1.0\",\"id\":5,\"method\":\"system.info\"}\n"[..],
        ),
        ("a batch", &b"[1,2,3]\n"[..]),
        ("invalid UTF-8", &[0xff, 0xfe, b'\n'][..]),
        (
            "params not an object",
            &b"{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"system.info\",\"params\":[1]}\n"[..],
        ),
    ] {
        c.send_raw(bytes).await;
        let raw = c.read_line_raw().await.unwrap();
        tr.rec(label, &raw);
    }

    // Scans.
    let code = t.sim.sim.issue_code("0").unwrap();
    let raw = wait_and_scan(&mut t, "02121", &format!("]Q1{}", code.code)).await;
    tr.rec("scan.wait → identity (医保码 of person 0)", &raw);
    let qr_session = result(&raw)["session_id"].as_str().unwrap().to_string();
    let raw = wait_and_scan(&mut t, "02121", "134567890123456789").await;
    tr.rec("scan.wait → WeChat payment code", &raw);
    let raw = wait_and_scan(&mut t, "02121", "281234567890123456").await;
    tr.rec("scan.wait → Alipay payment code", &raw);
    let raw = wait_and_scan(&mut t, "02121", &code.code).await;
    tr.rec("scan.wait → a used code", &raw);
    {
        let mut holder = t.client().await;
        holder
            .send(
                "scan.wait",
                json!({"business_type": "02121", "timeout_ms": 10000}),
            )
            .await;
        let mut probe = t.client().await;
        until_armed(&mut probe).await;
        let raw = c
            .call_raw("scan.wait", json!({"business_type": "02121"}))
            .await;
        tr.rec("scan.wait while another wait holds the scanner", &raw);
        let raw = c.call_raw("scanner.list", json!({})).await;
        tr.rec("scanner.list while armed", &raw);
    }
    // The holder went away: the scanner is free again.
    let mut probe = t.client().await;
    for _ in 0..200 {
        let v = probe.call("scanner.list", json!({})).await.unwrap();
        if v[0]["armed"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Identity without a phone.
    let people: Vec<(String, String, String, String)> = t.sim.sim.with_state(|s| {
        s.accounts
            .iter()
            .map(|a| {
                (
                    a.person.certno.clone(),
                    a.person.name.to_string(),
                    a.person.card_no.to_string(),
                    a.person.card_sn.to_string(),
                )
            })
            .collect()
    });
    let mut sessions = Vec::new();
    for (i, (certno, name, _, _)) in people.iter().enumerate() {
        let raw = c
            .call_raw(
                "identity.lookup",
                json!({"business_type": "01101", "credential": {"type": "id_card", "certno": certno, "psn_name": name}}),
            )
            .await;
        tr.rec(&format!("identity.lookup id_card person {i}"), &raw);
        sessions.push(result(&raw)["session_id"].as_str().unwrap().to_string());
    }
    let raw = c
        .call_raw(
            "identity.lookup",
            json!({"business_type": "01101", "credential": {"type": "ss_card", "card_no": people[1].2, "card_sn": people[1].3}}),
        )
        .await;
    tr.rec("identity.lookup ss_card", &raw);
    for (label, params) in [
        (
            "identity.lookup unknown person",
            json!({"business_type": "01101", "credential": {"type": "id_card", "certno": "110105194912310021", "psn_name": "x"}}),
        ),
        (
            "identity.lookup ss_card without card_sn",
            json!({"business_type": "01101", "credential": {"type": "ss_card", "card_no": "x"}}),
        ),
        (
            "identity.lookup unknown credential type",
            json!({"business_type": "01101", "credential": {"type": "face"}}),
        ),
        (
            "identity.lookup no credential",
            json!({"business_type": "01101"}),
        ),
        (
            "identity.lookup bad 医保码",
            json!({"business_type": "01101", "credential": {"type": "qr", "value": "not-a-code"}}),
        ),
    ] {
        let raw = c.call_raw("identity.lookup", params).await;
        tr.rec(label, &raw);
    }

    // Pharmacy: pre-settle, settle, idempotent resubmission, cancel.
    let sale = json!({
        "druginfo": {"begntime": "2026-11-23 10:00:00", "medfee_sumamt": "20.00", "acct_used_flag": "1", "med_type": "41"},
        "drugdetail": [{"feedetl_sn": "1", "med_list_codg": "XA01", "det_item_fee_sumamt": "20.00", "cnt": 1, "pric": "20.00"}],
    });
    let mut submit = async |label: &str, tr: &mut Transcript, params: Value| -> Value {
        let raw = c.call_raw("txn.submit", params).await;
        tr.rec(label, &raw);
        let v: Value = serde_json::from_str(&raw).unwrap();
        v["result"].clone()
    };
    submit(
        "txn.submit 2101 pre-settle (医保码 session)",
        &mut tr,
        json!({"client_ref": "G-2101", "infno": "2101", "session_id": qr_session, "input": sale}),
    )
    .await;
    let r = submit(
        "txn.submit 2102 settle",
        &mut tr,
        json!({"client_ref": "G-2102", "infno": "2102", "session_id": qr_session, "input": sale}),
    )
    .await;
    let setl_id = r["output"]["setlinfo"]["setl_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mdtrt_id = r["output"]["setlinfo"]["mdtrt_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    submit(
        "txn.submit 2102 again, same body",
        &mut tr,
        json!({"session_id": qr_session, "input": sale, "infno": "2102", "client_ref": "G-2102"}),
    )
    .await;
    submit(
        "txn.submit 2102 again, other body",
        &mut tr,
        json!({"client_ref": "G-2102", "infno": "2102", "session_id": qr_session, "input": {"druginfo": {}}}),
    )
    .await;
    submit(
        "txn.submit 2103 cancel",
        &mut tr,
        json!({"client_ref": "G-2103", "infno": "2103", "session_id": qr_session, "input": {"data": {"setl_id": setl_id, "mdtrt_id": mdtrt_id}}}),
    )
    .await;
    submit(
        "txn.submit 2103 of an unknown settlement (refused)",
        &mut tr,
        json!({"client_ref": "G-2103-bad", "infno": "2103", "session_id": qr_session, "input": {"data": {"setl_id": "NOPE", "mdtrt_id": "NOPE"}}}),
    )
    .await;
    for (label, params) in [
        (
            "txn.submit missing field",
            json!({"client_ref": "G-x1", "infno": "2103", "input": {"data": {"setl_id": "1"}}}),
        ),
        (
            "txn.submit internal infno",
            json!({"client_ref": "G-x2", "infno": "2601", "input": {}}),
        ),
        (
            "txn.submit unknown infno",
            json!({"client_ref": "G-x3", "infno": "7777", "input": {}}),
        ),
        (
            "txn.submit expired session",
            json!({"client_ref": "G-x4", "infno": "1101", "session_id": "ses_nope", "input": {"data": {}}}),
        ),
        (
            "txn.submit bad client_ref",
            json!({"client_ref": "bad ref!", "infno": "1101", "input": {"data": {}}}),
        ),
        (
            "txn.submit no input",
            json!({"client_ref": "G-x5", "infno": "1101"}),
        ),
        (
            "txn.submit psn_no without insuplc_admdvs",
            json!({"client_ref": "G-x6", "infno": "1101", "input": {"data": {"psn_no": "1"}}}),
        ),
        (
            "txn.submit node of the wrong type",
            json!({"client_ref": "G-x7", "infno": "2102", "session_id": qr_session, "input": {"druginfo": "x", "drugdetail": []}}),
        ),
    ] {
        submit(label, &mut tr, params).await;
    }
    submit(
        "txn.submit 1101 with a session",
        &mut tr,
        json!({"client_ref": "G-1101", "infno": "1101", "session_id": sessions[1], "input": {"data": {}}}),
    )
    .await;

    // Outpatient.
    let reg = submit(
        "txn.submit 2201 register",
        &mut tr,
        json!({"client_ref": "G-2201", "infno": "2201", "session_id": sessions[2], "input": {"data": {"insutype": "310", "begntime": "2026-11-23 09:00:00", "ipt_otp_no": "MZ-G", "atddr_no": "D1", "dr_name": "医生", "dept_code": "01", "dept_name": "内科", "caty": "A03"}}}),
    )
    .await;
    let mid = reg["output"]["data"]["mdtrt_id"]
        .as_str()
        .unwrap()
        .to_string();
    submit(
        "txn.submit 2203 diagnosis",
        &mut tr,
        json!({"client_ref": "G-2203", "infno": "2203", "session_id": sessions[2], "input": {"mdtrtinfo": {"mdtrt_id": mid, "med_type": "11", "begntime": "2026-11-23 09:00:00"}, "diseinfo": [{"diag_type": "1", "diag_srt_no": "1", "diag_code": "J00", "diag_name": "感冒", "diag_dept": "内科", "dise_dor_no": "D1", "dise_dor_name": "医生", "diag_time": "2026-11-23 09:10:00", "vali_flag": "1"}]}}),
    )
    .await;
    submit(
        "txn.submit 2204 fees",
        &mut tr,
        json!({"client_ref": "G-2204", "infno": "2204", "session_id": sessions[2], "input": {"feedetail": [
            {"feedetl_sn": "L1", "mdtrt_id": mid, "chrg_bchno": "B1", "det_item_fee_sumamt": "30.00", "cnt": 1, "pric": "30.00", "med_list_codg": "X1"},
            {"feedetl_sn": "L2", "mdtrt_id": mid, "chrg_bchno": "B1", "det_item_fee_sumamt": "12.50", "cnt": 1, "pric": "12.50", "med_list_codg": "X2"}]}}),
    )
    .await;
    let settle = json!({"data": {"med_type": "11", "medfee_sumamt": "42.50", "psn_setlway": "01", "mdtrt_id": mid, "chrg_bchno": "B1", "insutype": "310", "acct_used_flag": "1"}});
    submit(
        "txn.submit 2206 pre-settle",
        &mut tr,
        json!({"client_ref": "G-2206", "infno": "2206", "session_id": sessions[2], "input": settle}),
    )
    .await;
    let st = submit(
        "txn.submit 2207 settle",
        &mut tr,
        json!({"client_ref": "G-2207", "infno": "2207", "session_id": sessions[2], "input": settle}),
    )
    .await;
    let setl2 = st["output"]["setlinfo"]["setl_id"]
        .as_str()
        .unwrap()
        .to_string();
    submit(
        "txn.submit 2208 cancel the settlement",
        &mut tr,
        json!({"client_ref": "G-2208", "infno": "2208", "session_id": sessions[2], "input": {"data": {"setl_id": setl2, "mdtrt_id": mid}}}),
    )
    .await;
    submit(
        "txn.submit 2205 cancel the fees",
        &mut tr,
        json!({"client_ref": "G-2205", "infno": "2205", "session_id": sessions[2], "input": {"data": {"mdtrt_id": mid, "chrg_bchno": "B1"}}}),
    )
    .await;
    submit(
        "txn.submit 2202 cancel the registration",
        &mut tr,
        json!({"client_ref": "G-2202", "infno": "2202", "session_id": sessions[2], "input": {"data": {"mdtrt_id": mid, "ipt_otp_no": "MZ-G"}}}),
    )
    .await;

    // Inpatient.
    let adm = submit(
        "txn.submit 2401 admission",
        &mut tr,
        json!({"client_ref": "G-2401", "infno": "2401", "session_id": sessions[3], "input": {"mdtrtinfo": {"insutype": "310", "begntime": "2026-11-20 08:00:00", "med_type": "21", "ipt_no": "ZY-G", "adm_dept_codg": "02", "adm_bed": "12"}, "diseinfo": []}}),
    )
    .await;
    let iid = adm["output"]["result"]["mdtrt_id"]
        .as_str()
        .unwrap()
        .to_string();
    submit(
        "txn.submit 2301 fees",
        &mut tr,
        json!({"client_ref": "G-2301", "infno": "2301", "session_id": sessions[3], "input": {"feedetail": [{"feedetl_sn": "1", "mdtrt_id": iid, "det_item_fee_sumamt": "800.00", "med_list_codg": "Y1"}]}}),
    )
    .await;
    submit(
        "txn.submit 2402 discharge",
        &mut tr,
        json!({"client_ref": "G-2402", "infno": "2402", "session_id": sessions[3], "input": {"dscginfo": {"mdtrt_id": iid, "insutype": "310", "endtime": "2026-11-23 09:00:00", "dscg_way": "1"}, "diseinfo": []}}),
    )
    .await;
    let isettle = json!({"data": {"medfee_sumamt": "800.00", "psn_setlway": "01", "mdtrt_id": iid, "insutype": "310", "acct_used_flag": "1", "mid_setl_flag": "0"}});
    submit(
        "txn.submit 2303 pre-settle",
        &mut tr,
        json!({"client_ref": "G-2303", "infno": "2303", "session_id": sessions[3], "input": isettle}),
    )
    .await;
    let ist = submit(
        "txn.submit 2304 settle",
        &mut tr,
        json!({"client_ref": "G-2304", "infno": "2304", "session_id": sessions[3], "input": isettle}),
    )
    .await;
    let isetl = ist["output"]["setlinfo"]["setl_id"]
        .as_str()
        .unwrap()
        .to_string();
    submit(
        "txn.submit 2305 cancel",
        &mut tr,
        json!({"client_ref": "G-2305", "infno": "2305", "session_id": sessions[3], "input": {"data": {"setl_id": isetl, "mdtrt_id": iid}}}),
    )
    .await;

    // Unknown outcomes, resolved by the daemon.
    for (i, kind) in [FaultKind::CommitThenDrop, FaultKind::ResetBeforeCommit]
        .into_iter()
        .enumerate()
    {
        t.sim.sim.add_fault(FaultRule::next("2102", kind.clone()));
        let cref = format!("G-fault-{i}");
        let amt = format!("1{i}.00");
        let input = json!({
            "druginfo": {"begntime": "2026-11-23 10:00:00", "medfee_sumamt": amt, "acct_used_flag": "1", "med_type": "41"},
            "drugdetail": [{"feedetl_sn": format!("F{i}"), "med_list_codg": "XA01", "det_item_fee_sumamt": amt, "cnt": 1, "pric": amt}],
        });
        let raw = c
            .call_raw(
                "txn.submit",
                json!({"client_ref": cref, "infno": "2102", "session_id": sessions[0], "input": input}),
            )
            .await;
        tr.rec(
            &format!("txn.submit 2102 with {kind:?}: first answer"),
            &raw,
        );
        let raw = final_raw(&t, &mut c, &cref).await;
        tr.rec(&format!("txn.get 2102 with {kind:?}: final"), &raw);
    }

    // Settlements that stay, one per credential type, for report.usage.
    for (i, session) in [&qr_session, &sessions[0]].into_iter().enumerate() {
        let amt = format!("3{i}.00");
        let input = json!({
            "druginfo": {"begntime": "2026-11-23 11:00:00", "medfee_sumamt": amt, "acct_used_flag": "0", "med_type": "41"},
            "drugdetail": [{"feedetl_sn": format!("K{i}"), "med_list_codg": "XA02", "det_item_fee_sumamt": amt, "cnt": 1, "pric": amt}],
        });
        let raw = c
            .call_raw(
                "txn.submit",
                json!({"client_ref": format!("G-kept-{i}"), "infno": "2102", "session_id": session, "input": input}),
            )
            .await;
        tr.rec(&format!("txn.submit 2102 kept ({i})"), &raw);
    }

    // Reading records.
    let txn_id = result(&c.call_raw("txn.get", json!({"client_ref": "G-2102"})).await)["txn_id"]
        .as_str()
        .unwrap()
        .to_string();
    let today = chrono::Local::now().format("%Y-%m-%d").to_string();
    for (label, method, params) in [
        (
            "txn.get by client_ref",
            "txn.get",
            json!({"client_ref": "G-2101"}),
        ),
        ("txn.get by txn_id", "txn.get", json!({"txn_id": txn_id})),
        (
            "txn.get unknown client_ref",
            "txn.get",
            json!({"client_ref": "nope"}),
        ),
        (
            "txn.get unknown txn_id",
            "txn.get",
            json!({"txn_id": "txn_nope"}),
        ),
        ("txn.get no key", "txn.get", json!({})),
        ("txn.list", "txn.list", json!({"limit": 1000})),
        ("txn.list failed", "txn.list", json!({"state": "failed"})),
        (
            "txn.list reversed",
            "txn.list",
            json!({"state": "reversed"}),
        ),
        ("txn.list limit 2", "txn.list", json!({"limit": 2})),
        (
            "txn.list since today",
            "txn.list",
            json!({"since": today, "limit": 3}),
        ),
        (
            "txn.list since tomorrow (RFC 3339)",
            "txn.list",
            json!({"since": "2999-01-01T00:00:00+08:00"}),
        ),
        (
            "txn.list bad since",
            "txn.list",
            json!({"since": "yesterday"}),
        ),
        ("txn.list bad state", "txn.list", json!({"state": "paid"})),
        ("txn.list bad limit", "txn.list", json!({"limit": 0})),
        (
            "report.usage",
            "report.usage",
            json!({"from": today, "to": today}),
        ),
        (
            "report.usage empty range",
            "report.usage",
            json!({"from": "2001-01-01", "to": "2001-01-31"}),
        ),
        (
            "report.usage reversed range",
            "report.usage",
            json!({"from": "2001-02-01", "to": "2001-01-31"}),
        ),
        (
            "report.usage bad date",
            "report.usage",
            json!({"from": "2001-02-30", "to": "2001-03-01"}),
        ),
    ] {
        let raw = c.call_raw(method, params).await;
        tr.rec(label, &raw);
    }

    // HTTP: the same dispatch, one request per POST.
    let http = t.http();
    for (label, body) in [
        (
            "HTTP txn.get",
            json!({"jsonrpc": "2.0", "id": 1, "method": "txn.get", "params": {"client_ref": "G-2101"}}).to_string(),
        ),
        (
            "HTTP events.subscribe (needs a WebSocket)",
            json!({"jsonrpc": "2.0", "id": "a", "method": "events.subscribe"}).to_string(),
        ),
        (
            "HTTP notification",
            json!({"jsonrpc": "2.0", "method": "system.info"}).to_string(),
        ),
        ("HTTP not JSON", "{".to_string()),
    ] {
        let r = http.post(&body, &[]).await;
        tr.rec(label, &format!("{} {}", r.status, r.body));
    }

    // Every event the subscriber saw, in order.
    let raw = c.call_raw("system.info", json!({})).await;
    tr.rec("system.info at the end", &raw);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut events = Vec::new();
    while let Ok(Some(line)) =
        tokio::time::timeout(Duration::from_millis(300), ev.read_line_raw()).await
    {
        events.push(line);
    }
    for e in events {
        tr.rec("event", &e);
    }

    // Added later, after the events were read, so that the lines above stay
    // as they were recorded: rpc.discover and txn.resolve (a record only a
    // person can close: 2403 has no undo, and its answer was lost).
    let mut c = t.client().await;
    let raw = c.call_raw("rpc.discover", json!({})).await;
    let doc: Value = serde_json::from_str(ybpos_daemon::api::openrpc::TEXT).unwrap();
    assert_eq!(
        raw,
        format!(r#"{{"jsonrpc":"2.0","id":1,"result":{doc}}}"#),
        "rpc.discover must answer docs/openrpc.json"
    );
    tr.rec(
        "rpc.discover",
        r#"{"jsonrpc":"2.0","id":1,"result":<docs/openrpc.json>}"#,
    );
    let adm = result(
        &c.call_raw(
            "txn.submit",
            json!({"client_ref": "G-R-2401", "infno": "2401", "session_id": sessions[1], "input": {"mdtrtinfo": {"insutype": "390", "begntime": "2026-11-20 08:00:00", "med_type": "21", "ipt_no": "ZY-R", "adm_dept_codg": "02", "adm_bed": "7"}, "diseinfo": []}}),
        )
        .await,
    );
    let rid = adm["output"]["result"]["mdtrt_id"]
        .as_str()
        .unwrap()
        .to_string();
    t.sim
        .sim
        .add_fault(FaultRule::next("2403", FaultKind::CommitThenDrop));
    let raw = c
        .call_raw(
            "txn.submit",
            json!({"client_ref": "G-R-2403", "infno": "2403", "session_id": sessions[1], "input": {"adminfo": {"mdtrt_id": rid, "adm_bed": "8"}}}),
        )
        .await;
    tr.rec("txn.submit 2403 whose answer is lost", &raw);
    let raw = final_raw(&t, &mut c, "G-R-2403").await;
    tr.rec("txn.get 2403: needs a person", &raw);
    let stuck = result(&raw)["txn_id"].as_str().unwrap().to_string();
    let settled = adm["txn_id"].as_str().unwrap().to_string();
    for (label, method, params) in [
        (
            "txn.list needs_person",
            "txn.list",
            json!({"needs_person": true}),
        ),
        (
            "txn.list needs_person not a boolean",
            "txn.list",
            json!({"needs_person": "yes"}),
        ),
        (
            "system.info with a record that needs a person",
            "system.info",
            json!({}),
        ),
        (
            "txn.resolve bad outcome",
            "txn.resolve",
            json!({"txn_id": stuck, "outcome": "paid", "operator": "王会计", "note": "x"}),
        ),
        (
            "txn.resolve no operator",
            "txn.resolve",
            json!({"txn_id": stuck, "outcome": "succeeded", "note": "x"}),
        ),
        (
            "txn.resolve note too long",
            "txn.resolve",
            json!({"txn_id": stuck, "outcome": "succeeded", "operator": "王会计", "note": "x".repeat(501)}),
        ),
        (
            "txn.resolve unknown txn_id",
            "txn.resolve",
            json!({"txn_id": "txn_nope", "outcome": "succeeded", "operator": "王会计", "note": "x"}),
        ),
        (
            "txn.resolve a record that needs no person",
            "txn.resolve",
            json!({"txn_id": settled, "outcome": "reversed", "operator": "王会计", "note": "x"}),
        ),
        (
            "txn.resolve",
            "txn.resolve",
            json!({"txn_id": stuck, "outcome": "succeeded", "operator": "王会计", "note": "bed 8 on the platform"}),
        ),
        (
            "txn.resolve again",
            "txn.resolve",
            json!({"txn_id": stuck, "outcome": "failed", "operator": "王会计", "note": "x"}),
        ),
        (
            "txn.list needs_person after",
            "txn.list",
            json!({"needs_person": true}),
        ),
        (
            "identity.lookup id_card read from the card (a counter takes both)",
            "identity.lookup",
            json!({"business_type": "01101", "credential": {"type": "id_card", "certno": people[0].0, "psn_name": people[0].1, "read_from_card": true}}),
        ),
        (
            "identity.lookup read_from_card not a boolean",
            "identity.lookup",
            json!({"business_type": "01101", "credential": {"type": "id_card", "certno": people[0].0, "read_from_card": 1}}),
        ),
    ] {
        let raw = c.call_raw(method, params).await;
        tr.rec(label, &raw);
    }

    let mut norm = Normalizer::new(&[
        (&t.path().display().to_string(), "dir"),
        (&http.addr.port().to_string(), "port"),
        (&code.code, "code"),
        (&t.sim.base_url(), "gateway"),
        (&today, "today"),
    ]);
    let got: String = tr.lines.iter().map(|l| norm.apply(l) + "\n").collect();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/api.txt");
    if std::env::var_os("YBPOS_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    if got != want {
        let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("api.golden.got");
        std::fs::write(&out, &got).unwrap();
        let first = got
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(got.lines().count().min(want.lines().count()));
        panic!(
            "the API's wire output changed (first difference at line {}):\n  want: {}\n  got:  {}\nwhole output: {}\n(diff it against {}; record a deliberate change with YBPOS_UPDATE_GOLDEN=1)",
            first + 1,
            want.lines().nth(first).unwrap_or("<end>"),
            got.lines().nth(first).unwrap_or("<end>"),
            out.display(),
            path.display(),
        );
    }
}
