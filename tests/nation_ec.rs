//! `libNationECCode.so` (compat/nation-ec) loaded the way HIS programs load
//! the NHSA SDK — from C with `dlopen`, from Python with `ctypes`, from Java
//! with JNA — against the daemon while a test 医保码 is scanned on the pty
//! scanner (issue 11: "zero-change migration").
//!
//! The callers are the example programs in `compat/nation-ec/callers/`, run
//! as child processes with `YBPOS_SOCKET` set. The `.so` is the one cargo
//! built for this test (a dev-dependency of this crate puts it next to the
//! test binary). A missing toolchain (gcc, python3, java + JNA) prints
//! `SKIPPED: <reason>` and the rest runs; `.ci/run` installs them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use settlement_sim::faults::{FaultKind, FaultRule};
use ybpos_e2e::{Options, Terminal, until_armed};

/// The library cargo built for this test run.
fn library() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let lib = exe
        .parent()
        .expect("deps folder")
        .join("libNationECCode.so");
    assert!(
        lib.exists(),
        "{} missing: ybpos-nation-ec is a dev-dependency of ybpos-e2e, so cargo builds it there",
        lib.display()
    );
    lib
}

fn compat_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../compat/nation-ec")
}

/// A language that loads the library.
#[derive(Debug, Clone)]
enum Lang {
    /// The compiled `callers/call.c`.
    C(PathBuf),
    /// `python3 callers/call.py`.
    Python,
    /// `java -cp JNA callers/NationEcCall.java` (input on stdin).
    Java(PathBuf),
}

impl Lang {
    fn name(&self) -> &'static str {
        match self {
            Lang::C(_) => "C",
            Lang::Python => "Python",
            Lang::Java(_) => "Java",
        }
    }
}

/// Extra environment of a caller.
type Env<'a> = &'a [(&'a str, &'a str)];

/// The callers this machine can run; prints `SKIPPED: …` for the others.
struct Callers {
    c: Option<Lang>,
    python: Option<Lang>,
    java: Option<Lang>,
    _dir: tempfile::TempDir,
}

fn callers() -> Callers {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("call");
    let c = match Command::new("gcc")
        .args([
            "-std=c11",
            "-D_GNU_SOURCE",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-I",
        ])
        .arg(compat_dir())
        .arg("-o")
        .arg(&bin)
        .arg(compat_dir().join("callers/call.c"))
        .arg("-ldl")
        .output()
    {
        Ok(o) if o.status.success() => Some(Lang::C(bin)),
        Ok(o) => panic!(
            "callers/call.c does not compile against nation_ec.h:\n{}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => {
            println!("SKIPPED: C caller: gcc not runnable ({e})");
            None
        }
    };
    let python = match Command::new("python3")
        .args(["-c", "import ctypes"])
        .output()
    {
        Ok(o) if o.status.success() => Some(Lang::Python),
        _ => {
            println!("SKIPPED: Python caller: python3 with ctypes not found");
            None
        }
    };
    let jna = std::env::var_os("YBPOS_JNA_JAR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/java/jna.jar"));
    let java = match Command::new("java").arg("-version").output() {
        Ok(o) if o.status.success() && jna.exists() => Some(Lang::Java(jna)),
        Ok(o) if o.status.success() => {
            println!(
                "SKIPPED: Java caller: no JNA at {} (Debian: apt-get install libjna-java)",
                jna.display()
            );
            None
        }
        _ => {
            println!(
                "SKIPPED: Java caller: java not found (Debian: apt-get install default-jdk-headless)"
            );
            None
        }
    };
    Callers {
        c,
        python,
        java,
        _dir: dir,
    }
}

/// Starts `lang` calling `mode` (`nation` or `ecquery`) with `input`.
fn spawn(lang: &Lang, mode: &str, input: &str, env: &[(&str, &str)]) -> Child {
    let callers = compat_dir().join("callers");
    let mut cmd = match lang {
        Lang::C(bin) => {
            let mut c = Command::new(bin);
            c.arg(library()).arg(mode).arg(input);
            c
        }
        Lang::Python => {
            let mut c = Command::new("python3");
            c.arg(callers.join("call.py"))
                .arg(library())
                .arg(mode)
                .arg(input);
            c
        }
        Lang::Java(jna) => {
            let mut c = Command::new("java");
            c.arg("-cp")
                .arg(jna)
                .arg(callers.join("NationEcCall.java"))
                .arg(library())
                .arg(mode);
            c
        }
    };
    for var in [
        "YBPOS_SOCKET",
        "YBPOS_COMPAT_ENCODING",
        "YBPOS_COMPAT_OUTBUF",
        "YBPOS_COMPAT_TIMEOUT_MS",
        "YBPOS_COMPAT_SCANNER",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} caller: {e}", lang.name()));
    let mut stdin = child.stdin.take().expect("stdin");
    if matches!(lang, Lang::Java(_)) {
        stdin.write_all(input.as_bytes()).expect("stdin");
    }
    drop(stdin);
    child
}

/// Waits for the caller: its status line and its answer.
async fn finish(child: Child) -> (String, Value) {
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "caller failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    let status = lines.next().expect("status line").to_string();
    let answer: Value =
        serde_json::from_str(lines.next().expect("answer line")).expect("answer is JSON");
    (status, answer)
}

/// Runs a caller, and once its `scan.wait` holds the scanner, scans `text`.
async fn call_and_scan(
    t: &mut Terminal,
    lang: &Lang,
    mode: &str,
    input: &str,
    env: &[(&str, &str)],
    text: &str,
) -> (String, Value) {
    let sock = t.socket.to_string_lossy().into_owned();
    let mut env = env.to_vec();
    env.push(("YBPOS_SOCKET", &sock));
    let child = spawn(lang, mode, input, &env);
    let mut probe = t.client().await;
    until_armed(&mut probe).await;
    t.scan(text);
    finish(child).await
}

/// Runs a caller that needs no scan.
async fn call(t: &Terminal, lang: &Lang, input: &str, env: &[(&str, &str)]) -> (String, Value) {
    let sock = t.socket.to_string_lossy().into_owned();
    let mut env = env.to_vec();
    env.push(("YBPOS_SOCKET", &sock));
    finish(spawn(lang, "nation", input, &env)).await
}

fn input(business_type: &str, device_type: &str, extra: Value) -> String {
    json!({
        "orgId": "P42130200001",
        "transType": "ec.query",
        "data": {
            "orgId": "P42130200001",
            "businessType": business_type,
            "operatorId": "001",
            "operatorName": "收款员",
            "officeId": "",
            "officeName": "",
            "deviceType": device_type,
        },
        "extra": extra,
    })
    .to_string()
}

/// `data` of a success answer: a JSON string holding the decode fields.
fn data_of(answer: &Value) -> Value {
    let s = answer["data"]
        .as_str()
        .unwrap_or_else(|| panic!("data is a JSON string: {answer}"));
    serde_json::from_str(s).expect("data holds JSON")
}

fn message(answer: &Value) -> &str {
    answer["message"].as_str().expect("message")
}

#[tokio::test(flavor = "multi_thread")]
async fn c_python_and_java_read_a_scanned_code_in_the_sdk_shape() {
    let callers = callers();
    let mut t = Terminal::start(Options::new(ybpos_e2e::daemon_bin!())).await;
    let certno = t
        .sim
        .sim
        .with_state(|s| s.accounts[0].person.certno.clone());
    // (caller, function, environment, the status or return value of success)
    let gbk: Env = &[("YBPOS_COMPAT_ENCODING", "gbk")];
    let mut runs: Vec<(Lang, &str, Env, &str)> = Vec::new();
    if let Some(c) = &callers.c {
        runs.push((c.clone(), "nation", &[], "0000"));
        runs.push((c.clone(), "ecquery", &[], "0"));
    }
    if let Some(p) = &callers.python {
        runs.push((p.clone(), "nation", &[], "0000"));
        runs.push((p.clone(), "nation", gbk, "0000"));
    }
    if let Some(j) = &callers.java {
        runs.push((j.clone(), "nation", &[], "0000"));
    }
    for (i, (lang, mode, env, ok)) in runs.iter().enumerate() {
        let code = t.sim.sim.issue_code("0").expect("test code");
        let kiosk = if i % 2 == 0 { "" } else { "SelfService" };
        let extra = json!({"visit": format!("V{i}")});
        let (status, answer) = call_and_scan(
            &mut t,
            lang,
            mode,
            &input("02121", kiosk, extra.clone()),
            env,
            &code.code,
        )
        .await;
        let what = format!("{} {mode} {env:?}", lang.name());
        assert_eq!(status, *ok, "{what}: {answer}");
        assert_eq!(answer["code"], 0, "{what}: {answer}");
        assert_eq!(answer["message"], "成功");
        assert_eq!(answer["orgId"], "P42130200001");
        assert_eq!(answer["extra"], extra, "{what}");
        let keys: Vec<&String> = answer.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["orgId", "code", "message", "data", "extra"]);
        let data = data_of(&answer);
        assert_eq!(data["idNo"], certno.as_str(), "{what}");
        assert_eq!(data["idType"], "01");
        assert_eq!(
            data["userName"], "张三",
            "{what}: the name survives the encoding"
        );
        assert_eq!(data["insuOrg"], "421381");
        assert_eq!(data["gender"], "1");
        assert_eq!(data["birthday"], "1980.01.01");
        assert!(data["ecToken"].as_str().is_some_and(|s| s.len() > 10));
        for k in ["ecIndexNo", "nationality", "email", "extData"] {
            assert!(data[k].is_string(), "{what}: {k}");
        }
        println!(
            "{what}: code 0, {} decode fields",
            data.as_object().unwrap().len()
        );
    }
    // Nothing personal in the daemon's logs from any of this.
    t.stop();
    let logs = t.logs();
    for secret in [certno.as_str(), "张三"] {
        assert!(!logs.contains(secret), "logs contain {secret:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_failure_is_an_sdk_error_answer_in_chinese() {
    let callers = callers(); // keeps the compiled caller's folder
    let Some(c) = callers.c.clone() else { return };
    let mut t = Terminal::start(Options::new(ybpos_e2e::daemon_bin!())).await;
    let ok = input("02121", "", json!(""));

    // A WeChat payment code.
    let (st, a) = call_and_scan(&mut t, &c, "nation", &ok, &[], "134567890123456789").await;
    assert_eq!(st, "0000");
    assert_eq!(a["code"], 1002, "{a}");
    assert!(message(&a).starts_with("请出示医保码，不是付款码"), "{a}");
    assert_eq!(a["data"], Value::Null);

    // A used code: decode refuses it.
    let code = t.sim.sim.issue_code("0").unwrap();
    let (_, a) = call_and_scan(&mut t, &c, "nation", &ok, &[], &code.code).await;
    assert_eq!(a["code"], 0);
    tokio::time::sleep(Duration::from_millis(200)).await; // past the de-dup window
    let (_, a) = call_and_scan(&mut t, &c, "ecquery", &ok, &[], &code.code).await;
    assert_eq!(a["code"], 2004, "{a}");
    assert!(message(&a).contains("已使用"), "{a}");

    // Nothing scanned: -2, as kiosk pages expect.
    let (st, a) = call(&t, &c, &ok, &[("YBPOS_COMPAT_TIMEOUT_MS", "300")]).await;
    assert_eq!(st, "0000");
    assert_eq!(a["code"], -2, "{a}");
    assert!(message(&a).contains("没有扫到医保码"), "{a}");

    // Another wait holds the scanner.
    let mut holder = t.client().await;
    let id = holder
        .send(
            "scan.wait",
            json!({"business_type": "02121", "timeout_ms": 20000}),
        )
        .await;
    until_armed(&mut t.client().await).await;
    let (_, a) = call(&t, &c, &ok, &[]).await;
    assert_eq!(a["code"], 1003, "{a}");
    assert!(message(&a).contains("占用"), "{a}");
    drop(holder);
    let _ = id;
    let mut probe = t.client().await;
    for _ in 0..100 {
        if probe.call("scanner.list", json!({})).await.unwrap()[0]["armed"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The gateway is down: decode cannot be reached.
    t.sim
        .sim
        .add_fault(FaultRule::next("1162", FaultKind::Http5xx { status: 502 }).times(20));
    let code = t.sim.sim.issue_code("1").unwrap();
    let (_, a) = call_and_scan(&mut t, &c, "nation", &ok, &[], &code.code).await;
    assert_eq!(a["code"], 2001, "{a}");
    assert!(message(&a).contains("网关离线"), "{a}");
    t.sim.sim.clear_faults();

    // A transType the daemon cannot serve.
    let cert =
        json!({"orgId": "P1", "transType": "cn.nhsa.cert.get", "data": {"businessType": "02121"}});
    let (_, a) = call(&t, &c, &cert.to_string(), &[]).await;
    assert_eq!(a["code"], 9004, "{a}");
    assert!(message(&a).contains("不支持的交易类型"), "{a}");
    assert_eq!(a["orgId"], "P1");

    // Answers that would not fit the buffer become errors that do (the C
    // caller checks the canary behind its buffer and the terminator).
    let big = input("02121", "", json!("x".repeat(5000)));
    let code = t.sim.sim.issue_code("0").unwrap();
    let (st, a) = call_and_scan(&mut t, &c, "nation", &big, &[], &code.code).await;
    assert_eq!(st, "0000");
    assert_eq!(a["code"], 9005, "{a}");
    assert!(message(&a).contains("超过输出缓冲区 4096 字节"), "{a}");
    assert!(a.to_string().len() < 4096);
    let code = t.sim.sim.issue_code("0").unwrap();
    let (_, a) = call_and_scan(
        &mut t,
        &c,
        "nation",
        &ok,
        &[("YBPOS_COMPAT_OUTBUF", "300")],
        &code.code,
    )
    .await;
    assert_eq!(a["code"], 9005, "{a}");
    // The same with room: 20480 bytes, as one SDK integrator allocates.
    let code = t.sim.sim.issue_code("0").unwrap();
    let (_, a) = call_and_scan(
        &mut t,
        &c,
        "nation",
        &big,
        &[("YBPOS_COMPAT_OUTBUF", "20480")],
        &code.code,
    )
    .await;
    assert_eq!(a["code"], 0, "{a}");
    assert_eq!(a["extra"].as_str().unwrap().len(), 5000);

    // The daemon stops while a call waits for a scan.
    let sock = t.socket.to_string_lossy().into_owned();
    let child = spawn(&c, "nation", &ok, &[("YBPOS_SOCKET", &sock)]);
    until_armed(&mut t.client().await).await;
    assert!(t.stop().expect("stopped").success());
    let (st, a) = finish(child).await;
    assert_eq!(st, "0000");
    assert_eq!(a["code"], 9002, "{a}");
    assert!(message(&a).contains("断开"), "{a}");

    // And with no daemon at all.
    let (_, a) = call(&t, &c, &ok, &[]).await;
    assert_eq!(a["code"], 9001, "{a}");
    assert!(message(&a).contains("ybposd 服务未运行"), "{a}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caller_killed_mid_wait_frees_the_scanner() {
    let callers = callers(); // keeps the compiled caller's folder
    let Some(c) = callers.c.clone() else { return };
    let mut t = Terminal::start(Options::new(ybpos_e2e::daemon_bin!())).await;
    let ok = input("02121", "", json!(""));
    let sock = t.socket.to_string_lossy().into_owned();
    let mut child = spawn(&c, "nation", &ok, &[("YBPOS_SOCKET", &sock)]);
    let mut probe = t.client().await;
    until_armed(&mut probe).await;
    child.kill().expect("kill");
    child.wait().expect("reap");
    let mut freed = false;
    for _ in 0..100 {
        if probe.call("scanner.list", json!({})).await.unwrap()[0]["armed"] == false {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(freed, "the killed caller's wait must be cancelled");
    // The next cashier's call works.
    let code = t.sim.sim.issue_code("0").unwrap();
    let (_, a) = call_and_scan(&mut t, &c, "nation", &ok, &[], &code.code).await;
    assert_eq!(a["code"], 0, "{a}");
}

/// Every bad input of `call.c bad`: an error answer (or, for a NULL output
/// buffer, the "nothing written" status), never a crash; then the same run
/// under valgrind, which must report no error.
#[test]
fn bad_inputs_get_error_answers_and_valgrind_finds_nothing() {
    let callers = callers();
    let Some(Lang::C(bin)) = callers.c.clone() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nobody = dir.path().join("no-daemon.sock");
    let run = |prefix: &[&str]| {
        let mut cmd = if prefix.is_empty() {
            Command::new(&bin)
        } else {
            let mut c = Command::new(prefix[0]);
            c.args(&prefix[1..]).arg(&bin);
            c
        };
        cmd.arg(library())
            .arg("bad")
            .env("YBPOS_SOCKET", &nobody)
            .env_remove("YBPOS_COMPAT_ENCODING")
            .env_remove("YBPOS_COMPAT_OUTBUF")
            .output()
            .expect("run the C caller")
    };
    let out = run(&[]);
    assert!(
        out.status.success(),
        "C caller failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: &[(&str, &str, i64, &str)] = &[
        ("null_input", "0000", 9003, "NULL"),
        ("null_output", "-1", 0, ""),
        ("null_all", "-1", 0, ""),
        ("null_url", "0000", 9003, "缺少 data"),
        ("empty", "0000", 9003, "不是合法的 JSON"),
        ("invalid_json", "0000", 9003, "不是合法的 JSON"),
        ("truncated_json", "0000", 9003, "截断"),
        ("not_object", "0000", 9003, "JSON 对象"),
        (
            "missing_business_type",
            "0000",
            9003,
            "缺少 data.businessType",
        ),
        ("bad_business_type", "0000", 9003, "5 位数字"),
        ("invalid_utf8", "0000", 9003, "不是 UTF-8"),
        ("gbk_as_utf8", "0000", 9003, "YBPOS_COMPAT_ENCODING=gbk"),
        ("unsupported_trans_type", "0000", 9004, "不支持的交易类型"),
        (
            "error_answer_too_large",
            "0000",
            9003,
            "缺少 data.businessType",
        ),
        ("input_too_long", "0000", 9003, "超过 1048576 字节"),
        ("ecquery_null_input", "9003", 9003, "NULL"),
        ("ecquery_null_output", "-1", 0, ""),
        ("ecquery_invalid_json", "9003", 9003, "截断"),
        ("invalid_gbk", "0000", 9003, "不是 GBK"),
        ("bad_encoding_config", "0000", 9008, "YBPOS_COMPAT_ENCODING"),
        ("daemon_not_running", "0000", 9001, "ybposd 服务未运行"),
    ];
    let lines: Vec<&[u8]> = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        expected.len(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for (line, (name, status, code, text)) in lines.iter().zip(expected) {
        let mut parts = line.splitn(3, |&b| b == b'\t');
        let (n, s, answer) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap_or_default(),
        );
        assert_eq!(String::from_utf8_lossy(n), *name);
        assert_eq!(String::from_utf8_lossy(s), *status, "{name}");
        if text.is_empty() {
            assert!(answer.is_empty(), "{name}: nothing written");
            continue;
        }
        // The GBK case answers in GBK.
        let answer = if *name == "invalid_gbk" {
            encoding_rs::GBK
                .decode_without_bom_handling_and_without_replacement(answer)
                .expect("a GBK answer")
                .into_owned()
        } else {
            String::from_utf8(answer.to_vec()).expect("a UTF-8 answer")
        };
        assert!(answer.len() < 4096, "{name}");
        let v: Value =
            serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{name}: {e}: {answer}"));
        assert_eq!(v["code"], *code, "{name}: {v}");
        assert!(message(&v).contains(text), "{name}: {v}");
        assert_eq!(v["data"], Value::Null, "{name}");
    }

    match Command::new("valgrind").arg("--version").output() {
        Ok(o) if o.status.success() => {
            let out = run(&[
                "valgrind",
                "--error-exitcode=99",
                "--leak-check=full",
                "--errors-for-leak-kinds=definite,indirect",
                "--quiet",
            ]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "valgrind found errors ({}):\n{stderr}",
                out.status
            );
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).lines().count(),
                expected.len()
            );
            println!(
                "valgrind: the bad-input run is clean (0 errors, no definite or indirect leaks)"
            );
        }
        _ => println!("SKIPPED: valgrind run: valgrind not found"),
    }
}
