//! `ybposd --demo`: the whole product on one machine with nothing attached.
//!
//! Starts the gateway simulator on loopback, a virtual serial scanner on a
//! pseudo-terminal, and the daemon with a config it writes into a temporary
//! folder; then tells the newcomer, in plain words, how to "scan".

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rand::Rng;
use scanner_drivers::ScannerState;
use serialport::{SerialPort, TTYPort};
use settlement_client::auth::Signer;
use settlement_sim::{SimSettings, Simulator};
use tokio::io::AsyncBufReadExt;

use crate::run::{Daemon, Extras};
use crate::service::{DemoError, DemoPerson, DemoScanned, DemoScanner};

/// The demo's virtual scanner: writes codes into the pty the daemon reads.
#[derive(Debug)]
pub struct VirtualScanner {
    master: Mutex<TTYPort>,
    sim: Simulator,
}

impl VirtualScanner {
    /// A scanner writing into `master`, issuing codes from `sim`.
    pub fn new(master: TTYPort, sim: Simulator) -> Self {
        VirtualScanner {
            master: Mutex::new(master),
            sim,
        }
    }

    fn write(&self, bytes: &[u8]) -> Result<(), DemoError> {
        let mut m = self.master.lock().unwrap_or_else(|e| e.into_inner());
        m.write_all(bytes).and_then(|_| m.flush())?;
        Ok(())
    }
}

fn digits(prefix: &str, len: usize) -> String {
    let mut rng = rand::thread_rng();
    let mut s = prefix.to_string();
    while s.len() < len {
        s.push(char::from(b'0' + rng.gen_range(0..10)));
    }
    s
}

impl DemoScanner for VirtualScanner {
    fn scan(
        &self,
        person: Option<&str>,
        kind: &str,
        text: Option<&str>,
    ) -> Result<DemoScanned, DemoError> {
        if let Some(t) = text {
            self.write(format!("{t}\r").as_bytes())?;
            return Ok(DemoScanned::Text(t.to_string()));
        }
        let (text, person) = match kind {
            "medical" => {
                let who = person.unwrap_or("0");
                let c = self
                    .sim
                    .issue_code(who)
                    .ok_or_else(|| DemoError::NoSuchPerson(who.to_string()))?;
                let psn_name = self.sim.with_state(|s| {
                    s.find_person(&c.psn_no)
                        .map(|i| s.accounts[i].person.name.to_string())
                        .unwrap_or_default()
                });
                let person = DemoPerson {
                    psn_no: c.psn_no,
                    psn_name,
                };
                (c.code, Some(person))
            }
            "wechat" => (digits("13", 18), None),
            "alipay" => (digits("28", 18), None),
            "unionpay" => (digits("62", 19), None),
            "garbage" => {
                self.write(b"\x00\x01\x1b[garbage\xff\xfe\r")?;
                return Ok(DemoScanned::Garbage);
            }
            other => return Err(DemoError::UnknownKind(other.to_string())),
        };
        // An AIM prefix, as a real QR scanner configured to send one would.
        self.write(format!("]Q1{text}\r").as_bytes())?;
        Ok(DemoScanned::Code {
            kind: kind.to_string(),
            text,
            person,
        })
    }
}

/// Where the browser example is served from in the demo (README: "From a
/// browser"): `python3 -m http.server 17481 --bind 127.0.0.1 --directory
/// examples/browser`.
pub const EXAMPLE_PAGE_ORIGINS: [&str; 2] = ["http://127.0.0.1:17481", "http://localhost:17481"];

/// Origins the demo's HTTP API allows: the example page's, and any in
/// `YBPOS_DEMO_ALLOWED_ORIGINS` (comma-separated; tests serve the page on a
/// free port).
fn demo_origins() -> String {
    let extra = std::env::var("YBPOS_DEMO_ALLOWED_ORIGINS").unwrap_or_default();
    let all: Vec<String> = EXAMPLE_PAGE_ORIGINS
        .iter()
        .map(|s| s.to_string())
        .chain(
            extra
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        )
        .map(|o| format!("{o:?}"))
        .collect();
    format!("[{}]", all.join(", "))
}

fn demo_config(gateway: &str, pty: &Path) -> String {
    format!(
        r#"# Written by `ybposd --demo`. A real terminal's config looks like this too.
[terminal]
fixmedins_code  = "P42130200001"
fixmedins_name  = "ybpos 演示药房"
mdtrtarea_admvs = "421381"
opter           = "demo-cashier"
opter_name      = "演示收银员"

[gateway]
url     = "{gateway}"
profile = "fsi-paths"
auth    = "none"
request_timeout_ms = 10000

[[scanner]]
id        = "demo"
transport = "serial"
path      = "{pty}"
suffix    = "\r"

[api]
socket      = "api.sock"
http_listen = "127.0.0.1:0"        # a free port; the banner shows which
token_file  = "api-token"          # created at start (mode 0640)
allowed_origins = {origins}   # the browser example's page

[journal]
path = "journal.db"
"#,
        pty = pty.display(),
        origins = demo_origins(),
    )
}

/// Runs the demo until Ctrl-C or `q`.
pub async fn run() -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("ybpos-demo-").tempdir()?;
    let running = Simulator::new(SimSettings::default(), Signer::None)
        .bind("127.0.0.1:0".parse()?)
        .await?;
    let (master, slave) = TTYPort::pair()?;
    let pty = std::path::PathBuf::from(slave.name().unwrap_or_default());
    drop(slave);
    let cfg_path = dir.path().join("ybpos.toml");
    std::fs::write(&cfg_path, demo_config(&running.base_url(), &pty))?;
    let cfg = ybpos_config::load(&cfg_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let scanner = Arc::new(VirtualScanner::new(master, running.sim.clone()));
    let daemon = Daemon::start(
        cfg,
        Extras {
            demo: Some(scanner.clone() as Arc<dyn DemoScanner>),
        },
    )
    .await?;
    // Let the scanner connect before inviting scans.
    for _ in 0..50 {
        if daemon
            .service
            .hub
            .list()
            .first()
            .is_some_and(|s| s.state == ScannerState::Connected)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let sock = daemon.socket.display().to_string();
    let token_file = dir.path().join("api-token");
    let http = match daemon.http_addr {
        Some(a) => format!(
            "http://{a}   (token: {tf})\n                      \
             curl -H \"Authorization: Bearer $(cat {tf})\" -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.info\"}}' http://{a}/v1/rpc",
            tf = token_file.display()
        ),
        None => "off".into(),
    };
    println!(
        r#"
ybpos demo is running: no hardware, no gateway, no config file needed.

  Gateway simulator : {gw}   (test people: curl http://{addr}/sim/people)
  Virtual scanner   : "demo", a serial scanner on {pty}
  API socket        : {sock}
  HTTP/WebSocket API: {http}
  Config it wrote   : {cfg}

Try it:
  1. In a second terminal, wait for a scan the way a pharmacy POS does:
       cargo run -q --bin ybpos -- --socket {sock} wait 02121
  2. Come back here and press Enter: a test 医保码 for 张三 is "scanned".
     The second terminal prints the person's identity (psn_no, insurance, balance).

  Here: Enter = 张三 · 1/2/3 + Enter = other test people · w = WeChat payment code
        a = Alipay code · g = scanner garbage · q = quit
  Anywhere: cargo run -q --bin ybpos -- --socket {sock} scan-sim --kind wechat

The HIS examples (examples/README.md), in a third terminal at the repository's root:
  Python : python3 examples/python/sale.py --socket {sock}
  Java   : java examples/java/Sale.java {sock}
  C#     : mcs -out:Sale.exe examples/csharp/Sale.cs && mono Sale.exe {http_addr} {tf}
  Browser: python3 -m http.server 17481 --bind 127.0.0.1 --directory examples/browser
           then: xdg-open {page}
"#,
        gw = running.base_url(),
        http_addr = daemon
            .http_addr
            .map_or_else(|| "(HTTP off)".into(), |a| a.to_string()),
        tf = token_file.display(),
        page = match daemon.http_addr {
            Some(a) => format!(
                "\"http://127.0.0.1:17481/#api={a}&token=$(cat {})\"",
                token_file.display()
            ),
            None => "(the HTTP API is off)".into(),
        },
        addr = running.addr,
        pty = pty.display(),
        cfg = cfg_path.display(),
    );
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            l = lines.next_line(), if stdin_open => {
                let l = match l {
                    Ok(Some(l)) => l,
                    _ => { stdin_open = false; continue; }
                };
                let l = l.trim();
                let r = match l {
                    "q" | "quit" | "exit" => break,
                    "" => scanner.scan(Some("0"), "medical", None),
                    "w" => scanner.scan(None, "wechat", None),
                    "a" => scanner.scan(None, "alipay", None),
                    "u" => scanner.scan(None, "unionpay", None),
                    "g" => scanner.scan(None, "garbage", None),
                    p if p.chars().all(|c| c.is_ascii_digit()) => scanner.scan(Some(p), "medical", None),
                    other => scanner.scan(None, "medical", Some(other)),
                };
                match r {
                    Ok(v) => println!("scanned: {}", describe(&v)),
                    Err(e) => println!("cannot scan: {e}"),
                }
            }
        }
    }
    daemon.shutdown().await;
    running.shutdown().await;
    drop(dir);
    Ok(())
}

fn describe(v: &DemoScanned) -> String {
    match v {
        DemoScanned::Code {
            kind,
            person: Some(p),
            ..
        } if kind == "medical" => format!("a test 医保码 for {} (psn_no {})", p.psn_name, p.psn_no),
        DemoScanned::Code { kind, text, .. } => match kind.as_str() {
            "wechat" => "a WeChat payment code".into(),
            "alipay" => "an Alipay payment code".into(),
            "unionpay" => "a UnionPay code".into(),
            _ => format!("the text {text:?}"),
        },
        DemoScanned::Garbage => "line noise (the daemon drops it with a log line)".into(),
        DemoScanned::Text(t) => format!("the text {t:?}"),
    }
}
