//! The HIS examples in `examples/` run against `ybposd --demo`, as a vendor
//! would run them: each waits for a scan (a WeChat code first, then the
//! patient's 医保码), sells, prints the receipt and cancels; the
//! simulator's ledger shows the settlement and its cancel. A missing
//! toolchain prints `SKIPPED: …` (`.ci/run` installs them).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use ybpos_e2e::demo::Demo;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Runs an example (`cmd`) against the demo: scans a WeChat code, then a
/// 医保码, once the example waits; returns its output and the RESULT fields.
async fn sell(demo: &Demo, mut cmd: Command) -> (String, Value) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example");
    let out = child.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(l) = line else { break };
            let _ = tx.send(l);
        }
    });
    let mut printed = String::new();
    let mut scans = ["wechat", "medical"].into_iter();
    let mut result = None;
    loop {
        // Scan when the example's wait holds the scanner.
        let mut c = demo.client().await;
        let list = c.call("scanner.list", json!({})).await.unwrap();
        if list[0]["armed"] == true
            && let Some(kind) = scans.next()
        {
            demo.scan(kind, "0").await;
            // Until the wait has its answer, the scanner stays armed.
            for _ in 0..100 {
                let l = c.call("scanner.list", json!({})).await.unwrap();
                if l[0]["armed"] == false {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        match tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
            Ok(Some(l)) => {
                printed.push_str(&l);
                printed.push('\n');
                if let Some(r) = l.strip_prefix("RESULT ") {
                    result = Some(r.to_string());
                }
            }
            Ok(None) => break,
            Err(_) => {}
        }
        if let Ok(Some(_)) = child.try_wait() {
            while let Ok(l) = rx.try_recv() {
                printed.push_str(&l);
                printed.push('\n');
                if let Some(r) = l.strip_prefix("RESULT ") {
                    result = Some(r.to_string());
                }
            }
            break;
        }
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    use std::io::Read;
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    println!("{printed}{err}");
    assert!(
        status.success(),
        "the example failed ({status}):\n{printed}{err}"
    );
    let fields: serde_json::Map<String, Value> = result
        .expect("the example printed RESULT")
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    (printed, Value::Object(fields))
}

/// The ledger shows the settlement cancelled by its cancel, for `total`.
async fn assert_sold_and_cancelled(demo: &Demo, r: &Value, total: &str) {
    let l = demo.ledger().await;
    let s = l["settlements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["setl_id"] == r["setl_id"])
        .unwrap_or_else(|| panic!("settlement {} not in the ledger: {l}", r["setl_id"]));
    assert_eq!(s["kind"], "settlement", "{s}");
    assert_eq!(s["state"], "cancelled", "{s}");
    assert_eq!(
        s["split"]["medfee_sumamt"].to_string().trim_matches('"'),
        total,
        "{s}"
    );
    let c = l["settlements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["setl_id"] == r["cancel_setl_id"])
        .expect("the cancel is in the ledger");
    assert_eq!(c["kind"], "cancel", "{c}");
    assert_eq!(c["cancels"], r["setl_id"], "{c}");
    assert_eq!(l["conservation"]["ok"], true, "{l}");
}

fn check_output(printed: &str) {
    assert!(
        printed.contains("Not a 医保码: 这是微信付款码"),
        "{printed}"
    );
    assert!(
        printed.contains("Patient: 张三 4213**********1239"),
        "{printed}"
    );
    assert!(!printed.contains("421381198001011239"), "{printed}");
    assert!(printed.contains("--- receipt (2102) ---"), "{printed}");
    assert!(printed.contains("  account     "), "{printed}");
    assert!(printed.contains("--- cancelled (2103) ---"), "{printed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn python_example_sells_over_the_unix_socket() {
    if !have("python3") {
        println!("SKIPPED: examples/python: no python3");
        return;
    }
    let demo = Demo::start(&ybpos_e2e::daemon_bin!(), &[]);
    let mut cmd = Command::new("python3");
    cmd.arg(repo().join("examples/python/sale.py"))
        .arg("--socket")
        .arg(&demo.socket);
    let (printed, r) = sell(&demo, cmd).await;
    check_output(&printed);
    assert_eq!(r["total"], "43.00");
    assert_sold_and_cancelled(&demo, &r, "43.00").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn java_example_sells_over_the_unix_socket() {
    if !have("javac") || !have("java") {
        println!("SKIPPED: examples/java: no JDK (javac, java)");
        return;
    }
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("examples-java");
    let st = Command::new("javac")
        .arg("-encoding")
        .arg("UTF-8")
        .arg("-d")
        .arg(&out)
        .arg(repo().join("examples/java/Sale.java"))
        .status()
        .expect("javac");
    assert!(st.success(), "examples/java/Sale.java does not compile");
    let demo = Demo::start(&ybpos_e2e::daemon_bin!(), &[]);
    let mut cmd = Command::new("java");
    cmd.arg("-Dfile.encoding=UTF-8")
        .arg("-Dstdout.encoding=UTF-8")
        .arg("-cp")
        .arg(&out)
        .arg("Sale")
        .arg(&demo.socket);
    let (printed, r) = sell(&demo, cmd).await;
    check_output(&printed);
    assert_eq!(r["total"], "45.40");
    assert_sold_and_cancelled(&demo, &r, "45.40").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn csharp_example_sells_over_http() {
    if !have("mcs") || !have("mono") {
        println!("SKIPPED: examples/csharp: no Mono C# compiler (apt-get install mono-mcs)");
        return;
    }
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("examples-csharp");
    std::fs::create_dir_all(&out).unwrap();
    let exe = out.join("Sale.exe");
    let st = Command::new("mcs")
        .arg(format!("-out:{}", exe.display()))
        .arg(repo().join("examples/csharp/Sale.cs"))
        .status()
        .expect("mcs");
    assert!(st.success(), "examples/csharp/Sale.cs does not compile");
    let demo = Demo::start(&ybpos_e2e::daemon_bin!(), &[]);
    let mut cmd = Command::new("mono");
    cmd.arg(&exe)
        .arg(demo.http.to_string())
        .arg(&demo.token_file);
    let (printed, r) = sell(&demo, cmd).await;
    check_output(&printed);
    assert_eq!(r["total"], "42.80");
    assert_sold_and_cancelled(&demo, &r, "42.80").await;
}
