//! The browser example (`examples/browser/index.html`) driven in headless
//! Chromium over the DevTools protocol, against `ybposd --demo`: the page
//! is served by its documented one-line command, a WeChat code shows the
//! hint, the 医保码 shows the person, items go into the cart, the sale is
//! pre-settled, settled (receipt with fund / account / cash) and cancelled;
//! the simulator's ledger shows both. Screenshots go to
//! `target/tmp/browser-sale/`. Without Chromium (Debian's `chromium`,
//! installed by `.ci/run`) or python3 it prints `SKIPPED: …`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use ybpos_e2e::demo::Demo;

fn chromium() -> Option<PathBuf> {
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills a child process when dropped.
struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A DevTools page session.
struct Page {
    ws: WebSocketStream<TcpStream>,
    next: u64,
    exceptions: Vec<String>,
}

impl Page {
    async fn send(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        self.ws
            .send(Message::text(
                json!({"id": id, "method": method, "params": params}).to_string(),
            ))
            .await
            .expect("CDP send");
        loop {
            let m = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .expect("CDP answer in time")
                .expect("CDP open")
                .expect("CDP message");
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["method"] == "Runtime.exceptionThrown" {
                self.exceptions
                    .push(v["params"]["exceptionDetails"].to_string());
            }
            if v["id"] == json!(id) {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    async fn eval(&mut self, js: &str) -> Value {
        let r = self
            .send(
                "Runtime.evaluate",
                json!({"expression": js, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{js}: {r}");
        r["result"]["value"].clone()
    }

    async fn text(&mut self, id: &str) -> String {
        self.eval(&format!("document.getElementById('{id}').innerText"))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits until the page's `data-step` is `step`.
    async fn until_step(&mut self, step: &str) {
        for _ in 0..300 {
            // Right after `Page.navigate` the new document may have no
            // body yet: that is "not yet", not a failure.
            if self.eval("document.body?.dataset.step").await == step {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let status = self.text("status").await;
        panic!(
            "the page never reached step {step:?}; status: {status}; exceptions: {:?}",
            self.exceptions
        );
    }

    async fn click(&mut self, selector: &str) {
        let ok = self
            .eval(&format!(
                "(() => {{ const b = document.querySelector({selector:?}); if (!b || b.disabled) return false; b.click(); return true; }})()"
            ))
            .await;
        assert_eq!(ok, true, "{selector} is not there or disabled");
    }

    async fn screenshot(&mut self, path: &Path) {
        let r = self
            .send("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64_decode(r["data"].as_str().unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
        println!("screenshot: {}", path.display());
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => 0,
        }
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|b| *b != b'=' && !b.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, c)| acc | (val(*c) << (18 - 6 * i)));
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}

async fn scan_when_armed(demo: &Demo, kind: &str) {
    let mut c = demo.client().await;
    for _ in 0..400 {
        let l = c.call("scanner.list", json!({})).await.unwrap();
        if l[0]["armed"] == true {
            demo.scan(kind, "0").await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the page's scan.wait never armed the scanner");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pharmacy_sale_in_headless_chromium() {
    let Some(chrome) = chromium() else {
        println!("SKIPPED: browser sale: no Chromium (apt-get install chromium)");
        return;
    };
    if Command::new("python3").arg("--version").output().is_err() {
        println!("SKIPPED: browser sale: no python3 to serve the page");
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let demo = Demo::start(&ybpos_e2e::daemon_bin!(), std::slice::from_ref(&origin));

    // The page, served by the README's one-line command (on a free port).
    let _server = Kill(
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(repo.join("examples/browser"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server"),
    );
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let profile = tempfile::tempdir().unwrap();
    let mut chrome = Kill(
        Command::new(chrome)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--window-size=1280,900",
                "--remote-debugging-port=0",
                "--lang=zh-CN",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium"),
    );
    // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/…"
    let err = chrome.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            if let Some(at) = l.find("ws://") {
                let _ = tx.send(l[at..].to_string());
            }
        }
    });
    let browser_ws = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("Chromium printed its DevTools address");
    let devtools = browser_ws
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let list: Value = serde_json::from_str(
        &reqwest::get(format!("http://{devtools}/json/list"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let page_ws = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "page")
        .and_then(|t| t["webSocketDebuggerUrl"].as_str())
        .expect("a page target")
        .to_string();
    let tcp = TcpStream::connect(&devtools).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(page_ws.as_str(), tcp)
        .await
        .expect("DevTools WebSocket");
    let mut page = Page {
        ws,
        next: 1,
        exceptions: Vec::new(),
    };
    page.send("Runtime.enable", json!({})).await;
    page.send("Page.enable", json!({})).await;
    let url = format!("{origin}/#api={}&token={}", demo.http, demo.token());
    page.send("Page.navigate", json!({"url": url})).await;
    page.until_step("ready").await;
    let chips = page.text("scanners").await;
    assert!(chips.contains("扫码枪 demo: connected"), "{chips}");

    // A WeChat payment code first: the daemon's hint, and the page waits on.
    page.click("#wait").await;
    page.until_step("waiting").await;
    scan_when_armed(&demo, "wechat").await;
    page.until_step("hint").await;
    let hint = page.text("hint").await;
    assert!(hint.contains("这是微信付款码，不是医保码"), "{hint}");
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-sale");
    page.screenshot(&shots.join("1-payment-code-hint.png"))
        .await;

    // The patient's 医保码.
    scan_when_armed(&demo, "medical").await;
    page.until_step("person").await;
    let person = page.text("person").await;
    assert!(person.contains("张三"), "{person}");
    assert!(person.contains("4213**********1239"), "{person}");
    assert!(!person.contains("421381198001011239"), "{person}");

    // The cart: 2 × 12.50 + 1 × 18.00 = 43.00, computed in fen.
    page.click("[data-add=XA01]").await;
    page.click("[data-add=XA01]").await;
    page.click("[data-add=XB02]").await;
    assert_eq!(page.text("total").await, "43.00");
    page.click("#presettle").await;
    page.until_step("presettled").await;
    let preview = page.text("preview").await;
    assert!(preview.contains("21.50"), "{preview}");

    page.click("#settle").await;
    page.until_step("settled").await;
    let receipt = page.text("receipt").await;
    for want in [
        "统筹基金 Fund",
        "个人账户 Account",
        "现金 Cash",
        "21.50",
        "0.00",
        "43.00",
        "978.50",
    ] {
        assert!(
            receipt.contains(want),
            "{want} not in the receipt: {receipt}"
        );
    }
    let setl_id = page
        .eval("document.getElementById('receipt').dataset.setlId")
        .await;
    page.screenshot(&shots.join("2-receipt.png")).await;
    let log = page.text("log").await;
    assert!(log.contains("scan on demo: 微信付款码"), "{log}");
    assert!(log.contains("txn 2102"), "{log}");

    page.click("#cancel").await;
    page.until_step("cancelled").await;
    let cancelled = page.text("receipt").await;
    assert!(cancelled.contains("已撤销 CANCELLED"), "{cancelled}");
    assert!(cancelled.contains("-43.00"), "{cancelled}");
    page.screenshot(&shots.join("3-cancelled.png")).await;
    assert!(page.exceptions.is_empty(), "{:?}", page.exceptions);

    // The simulator's books: the settlement, cancelled, and its cancel.
    let l = demo.ledger().await;
    let all = l["settlements"].as_array().unwrap();
    let s = all
        .iter()
        .find(|s| s["setl_id"] == setl_id)
        .unwrap_or_else(|| panic!("{setl_id} not in the ledger: {l}"));
    assert_eq!(s["state"], "cancelled", "{s}");
    assert!(
        all.iter()
            .any(|c| c["kind"] == "cancel" && c["cancels"] == setl_id),
        "{l}"
    );
    assert_eq!(l["conservation"]["ok"], true);
}
