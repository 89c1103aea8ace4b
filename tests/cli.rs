//! `ybpos` against a running daemon: what people see (local times, masked
//! ID numbers, tables, the person block), what monitoring gets (exit
//! codes), errors in plain words with the next step, and bad input. Run
//! with `--nocapture` to see the transcripts.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use settlement_sim::faults::{FaultKind, FaultRule};
use ybpos_e2e::money::{ok, pharmacy_sale, who};
use ybpos_e2e::{Options, Terminal, until_armed};

const YBPOS: &str = env!("CARGO_BIN_EXE_ybpos-under-test");

/// Runs `ybpos` against `socket` with `args`; the exit code, stdout and stderr.
fn ybpos(socket: &Path, args: &[&str]) -> (i32, String, String) {
    let out = cmd(socket, args).output().expect("run ybpos");
    result(out)
}

fn cmd(socket: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(YBPOS);
    c.arg("--socket")
        .arg(socket)
        .args(args)
        .env("TZ", "Asia/Shanghai")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn result(out: Output) -> (i32, String, String) {
    let code = out.status.code().unwrap_or(-1);
    let so = String::from_utf8_lossy(&out.stdout).into_owned();
    let se = String::from_utf8_lossy(&out.stderr).into_owned();
    println!("$ ybpos … → exit {code}\n{so}{se}");
    (code, so, se)
}

async fn run(socket: &Path, args: &[&str]) -> (i32, String, String) {
    let socket = socket.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        ybpos(&socket, &a)
    })
    .await
    .unwrap()
}

fn opts() -> Options {
    let mut o = Options::new(ybpos_e2e::daemon_bin!());
    o.log = "info".into();
    o.dedupe_window_ms = 0;
    o.request_timeout_ms = 800;
    o.journal_toml = "reversal_grace_ms = 300".into();
    o
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cashiers_day_with_ybpos() {
    let mut t = Terminal::start(opts()).await;
    let sock = t.socket.clone();

    // All well: exit 0, one screen.
    let (code, out, _) = run(&sock, &["status"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Gateway   online · signed in"), "{out}");
    assert!(
        out.contains("counter    serial       connected · no scan yet"),
        "{out}"
    );
    assert!(out.contains("OK: all well."), "{out}");
    assert!(
        !out.contains("\x1b["),
        "no colours when not on a TTY: {out}"
    );

    // `watch` runs through a scan and a sale.
    let mut watch = cmd(&sock, &["watch"]).spawn().expect("watch");
    tokio::time::sleep(Duration::from_millis(500)).await;

    // `wait`: a payment code first (exit 1, plain words), then the 医保码.
    let waiting = cmd(&sock, &["wait", "--timeout", "20"]).spawn().unwrap();
    let mut probe = t.client().await;
    until_armed(&mut probe).await;
    t.scan("134567890123456789");
    let (code, _, err) = result(waiting.wait_with_output().unwrap());
    assert_eq!(code, 1);
    assert!(
        err.contains("that was a WeChat Pay code, not a 医保码"),
        "{err}"
    );
    let waiting = cmd(&sock, &["wait", "--timeout", "20"]).spawn().unwrap();
    until_armed(&mut probe).await;
    let code = t.sim.sim.issue_code("0").unwrap();
    t.scan(&format!("]Q1{}", code.code));
    let (rc, out, _) = result(waiting.wait_with_output().unwrap());
    assert_eq!(rc, 0, "{out}");
    assert!(out.starts_with("张三   男 · "), "{out}");
    assert!(out.contains("ID          4213**********1239"), "{out}");
    assert!(
        !out.contains("421381198001011239"),
        "the ID number is masked: {out}"
    );
    assert!(out.contains("Insurance   310 职工基本医疗保险"), "{out}");
    assert!(
        out.contains("Balance     1000.00 (personal account)"),
        "{out}"
    );

    // A sale through the API (as the POS does), then a cancel.
    let mut c = t.client().await;
    let w = who(&t, &mut c, 0).await;
    let sale = ok(
        &mut c,
        &w,
        "POS1-0001",
        "2102",
        pharmacy_sale("L1", "20.00"),
    )
    .await;
    let setl = &sale["output"]["setlinfo"];
    ok(
        &mut c,
        &w,
        "POS1-0001-cancel",
        "2103",
        json!({"data": {"setl_id": setl["setl_id"], "mdtrt_id": setl["mdtrt_id"]}}),
    )
    .await;
    ok(
        &mut c,
        &w,
        "POS1-0002",
        "2102",
        pharmacy_sale("L2", "12.50"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = watch.kill();
    let (_, out, _) = result(watch.wait_with_output().unwrap());
    assert!(
        out.contains(
            "scan     counter   WeChat Pay code  1345**********6789 (18 chars) — a payment code"
        ),
        "{out}"
    );
    assert!(out.contains("医保码"), "{out}");
    assert!(!out.contains(&code.code), "the code is masked: {out}");
    assert!(
        out.contains("txn      2102  POS1-0001  → succeeded"),
        "{out}"
    );
    assert!(
        out.contains("txn      2103  POS1-0001-cancel  → succeeded"),
        "{out}"
    );

    // One record, by client_ref, with the split; times in the local zone.
    let (code, out, _) = run(&sock, &["txn", "get", "POS1-0002"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("Split       total 12.50 = fund "), "{out}");
    let created = sale["created_at"].as_str().unwrap();
    let shanghai = chrono::DateTime::parse_from_rfc3339(created)
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .format("%Y-%m-%d %H:%M")
        .to_string();
    let (_, out, _) = run(&sock, &["txn", "get", sale["txn_id"].as_str().unwrap()]).await;
    assert!(
        out.contains(&format!("created {shanghai}")),
        "TZ=Asia/Shanghai: {shanghai} in {out}"
    );

    let (code, out, _) = run(&sock, &["txn", "list", "--since", "today"]).await;
    assert_eq!(code, 0);
    assert!(out.starts_with("CREATED"), "{out}");
    assert!(out.contains("POS1-0001-cancel"), "{out}");
    let (code, out, _) = run(&sock, &["--json", "txn", "list", "--state", "succeeded"]).await;
    assert_eq!(code, 0);
    let list: Value = serde_json::from_str(&out).expect("--json is JSON");
    assert_eq!(list.as_array().unwrap().len(), 3);

    let (code, out, _) = run(&sock, &["report", "usage"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("By credential: 医保码 (01) 0 · ID card (02) 1"),
        "{out}"
    );
    assert!(out.contains("医保码 share: 0.0%"), "{out}");

    // lookup: ID card and social-security card.
    let (certno, card_no, card_sn) = t.sim.sim.with_state(|s| {
        let p = &s.accounts[1].person;
        (
            p.certno.clone(),
            p.card_no.to_string(),
            p.card_sn.to_string(),
        )
    });
    let (code, out, _) = run(&sock, &["lookup", "--id-card", &certno, "--name", "李四"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("李四   女"), "{out}");
    let (code, out, _) = run(
        &sock,
        &["lookup", "--ss-card", &card_no, "--card-sn", &card_sn],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("social-security card"), "{out}");

    // A record only a person can close: status exits 2 and says how.
    let stuck = {
        let w = who(&t, &mut c, 3).await;
        let adm = ok(
            &mut c,
            &w,
            "ADM-1",
            "2401",
            json!({"mdtrtinfo": {"insutype": "310", "begntime": "2026-11-20 08:00:00", "med_type": "21", "ipt_no": "ZY-C", "adm_dept_codg": "02", "adm_bed": "12"}, "diseinfo": []}),
        )
        .await;
        let iid = adm["output"]["result"]["mdtrt_id"].as_str().unwrap();
        t.sim
            .sim
            .add_fault(FaultRule::next("2403", FaultKind::CommitThenDrop));
        let r = c
            .call(
                "txn.submit",
                json!({"client_ref": "ADM-1-bed", "infno": "2403", "session_id": w.session, "input": {"adminfo": {"mdtrt_id": iid, "adm_bed": "13"}}}),
            )
            .await
            .unwrap();
        assert_eq!(r["state"], "reversal_failed", "{r}");
        r["txn_id"].as_str().unwrap().to_string()
    };
    let (code, out, _) = run(&sock, &["status"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("Needs a person (1):"), "{out}");
    assert!(out.contains(&stuck), "{out}");
    assert!(
        out.contains(&format!(
            "ybpos txn resolve {stuck} --outcome succeeded|failed|reversed"
        )),
        "{out}"
    );
    assert!(out.contains("NEEDS A PERSON: 1 transaction(s)"), "{out}");
    let (code, out, _) = run(&sock, &["--json", "status"]).await;
    assert_eq!(code, 2);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["needs_person"][0]["txn_id"], stuck.as_str());
    let (code, out, _) = run(&sock, &["txn", "list", "--needs-person"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("reversal_failed"), "{out}");
    let (code, out, _) = run(&sock, &["txn", "get", &stuck]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("ybpos txn resolve {stuck} --outcome")),
        "{out}"
    );
    let (code, out, _) = run(
        &sock,
        &[
            "txn",
            "resolve",
            &stuck,
            "--outcome",
            "succeeded",
            "--operator",
            "王会计",
            "--note",
            "bed 13 on the platform",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Closed by   王会计"), "{out}");
    let (code, _, err) = run(
        &sock,
        &[
            "txn",
            "resolve",
            &stuck,
            "--outcome",
            "failed",
            "--operator",
            "王会计",
            "--note",
            "again",
        ],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("does not need a person"), "{err}");
    let (code, out, _) = run(&sock, &["status"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("last scan"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_plain_words_and_exit_codes() {
    // No daemon: exit 3, what to do next.
    let none = Path::new("/nonexistent/ybpos/api.sock");
    let (code, _, err) = ybpos(none, &["status"]);
    assert_eq!(code, 3);
    assert!(err.contains("the daemon is not running"), "{err}");
    assert!(err.contains("systemctl status ybposd"), "{err}");

    // A second scanner that is not plugged in: status warns (exit 1).
    let mut o = opts();
    o.extra_toml = "[[scanner]]\nid = \"spare\"\ntransport = \"serial\"\npath = \"/dev/ybpos-test-no-such-tty\"\n".into();
    let t = Terminal::start(o).await;
    let sock = t.socket.clone();
    let (code, out, _) = run(&sock, &["status"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("spare      serial       absent"), "{out}");
    assert!(
        out.contains("WARNING: scanner spare is absent: check its cable"),
        "{out}"
    );
    let cases: &[(&[&str], i32, &str)] = &[
        // Refused by ybpos itself (usage: 64).
        (&["txn", "list", "--since", "soon"], 64, "give a date"),
        (&["txn", "list", "--limit", "0"], 64, "limit"),
        (&["report", "usage", "--from", "2026-02-30"], 64, "from"),
        (
            &[
                "report",
                "usage",
                "--from",
                "2026-03-02",
                "--to",
                "2026-03-01",
            ],
            64,
            "before --from",
        ),
        (
            &[
                "txn",
                "resolve",
                "txn_x",
                "--outcome",
                "maybe",
                "--operator",
                "a",
                "--note",
                "b",
            ],
            64,
            "possible values",
        ),
        (
            &["txn", "resolve", "txn_x", "--outcome", "failed"],
            64,
            "--operator",
        ),
        (&["wait", "--timeout", "500"], 64, "timeout"),
        (&["lookup"], 64, "required"),
        (
            &[
                "lookup",
                "--id-card",
                "1",
                "--ss-card",
                "2",
                "--card-sn",
                "3",
            ],
            64,
            "cannot be used",
        ),
        (&["lookup", "--ss-card", "2"], 64, "--card-sn"),
        (&["call", "txn.get", "{"], 64, "JSON"),
        (&["call", "txn.get", "[1]"], 64, "JSON object"),
        (&["no-such-command"], 64, "unrecognized"),
        // Refused by the daemon (1), in plain words.
        (
            &["txn", "list", "--state", "paid"],
            1,
            "did not take a value: state: must be one of",
        ),
        (&["txn", "get", "nope"], 1, "no such transaction"),
        (&["txn", "get", "txn_nope"], 1, "no such transaction"),
        (&["wait", "2121"], 1, "5-digit"),
        (
            &["wait", "--scanner", "nope"],
            1,
            "check the scanner's cable",
        ),
        (
            &["wait", "--timeout", "1"],
            1,
            "nothing was scanned within 1 s",
        ),
        (
            &["lookup", "--id-card", "110105194912310021", "--name", "x"],
            1,
            "the insurance platform said no",
        ),
        (
            &["lookup", "--qr", "not-a-code"],
            1,
            "the platform refused the code",
        ),
        (
            &[
                "txn",
                "resolve",
                "txn_nope",
                "--outcome",
                "failed",
                "--operator",
                "a",
                "--note",
                "b",
            ],
            1,
            "no such transaction",
        ),
        (&["scan-sim"], 1, "not serve it"),
        (&["call", "no.such.method"], 1, "no method"),
    ];
    for (args, want, says) in cases {
        let (code, _, err) = run(&sock, args).await;
        assert_eq!(code, *want, "ybpos {args:?}: {err}");
        assert!(
            err.contains(says),
            "ybpos {args:?} should say {says:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    // Help describes the program, not the crate.
    let (code, out, _) = ybpos(&sock, &["--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("the cashier's and support's view of ybposd"),
        "{out}"
    );
    assert!(out.contains("Exit status:"), "{out}");
    assert!(!out.contains("wiring"), "{out}");
}

/// The peer-uid allow-list and the socket group, as an HIS running as
/// another user meets them (needs root to be another user).
#[tokio::test(flavor = "multi_thread")]
async fn another_user_needs_the_group_and_the_allow_list() {
    if !nix::unistd::getuid().is_root() {
        println!("SKIPPED: peer-uid allow-list: needs root to run a client as another user");
        return;
    }
    let nobody = 65534u32;
    let Ok(Some(nogroup)) = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(nobody)) else {
        println!("SKIPPED: peer-uid allow-list: no group with gid 65534 here");
        return;
    };
    // The socket's group stands in for `ybpos`; only root is listed at first.
    let mut o = opts();
    o.api_toml = format!("socket_group = \"{}\"\nallowed_uids = [0]", nogroup.name);
    let t = Terminal::start(o).await;
    std::fs::set_permissions(
        t.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .unwrap();
    let as_user = |uid: u32, gid: u32| {
        let mut c = cmd(&t.socket, &["status"]);
        c.uid(uid).gid(gid);
        result(c.output().expect("run ybpos as another user"))
    };
    // In the group but not listed: refused by the daemon, and logged.
    let (code, _, err) = as_user(nobody, nobody);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("ybposd refuses this user (uid 65534)"),
        "{err}"
    );
    assert!(err.contains("api.allowed_uids"), "{err}");
    // The daemon logs the refusal as it closes the connection: the client
    // may read the refusal before the line reaches the log file.
    let mut logs = t.logs();
    for _ in 0..100 {
        if logs.contains("Connection refused: the peer's uid is not in api.allowed_uids.") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        logs = t.logs();
    }
    let line = logs
        .lines()
        .find(|l| l.contains("Connection refused: the peer's uid is not in api.allowed_uids."))
        .unwrap_or_else(|| panic!("the refusal is logged:\n{logs}"));
    assert!(line.contains("uid=65534"), "{line}");
    // Not in the group: the socket's permissions keep it out.
    let (code, _, err) = as_user(nobody, 1);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("add it to group ybpos"), "{err}");
    // Root (listed) is served.
    let (code, out, _) = ybpos(&t.socket, &["status"]);
    assert_eq!(code, 0, "{out}");
    drop(t);

    // In the group and listed: served.
    let mut o = opts();
    o.api_toml = format!(
        "socket_group = \"{}\"\nallowed_uids = [0, {nobody}]",
        nogroup.name
    );
    let t = Terminal::start(o).await;
    std::fs::set_permissions(
        t.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .unwrap();
    let mut c = cmd(&t.socket, &["status"]);
    c.uid(nobody).gid(nobody);
    let (code, out, err) = result(c.output().unwrap());
    assert_eq!(code, 0, "{out}{err}");
}
