//! `ybposd --demo` as a child process (the tests' daemon binary with
//! `--demo`): its banner read for the socket, the HTTP API and the
//! simulator, test codes "scanned" with `demo.scan`, and the simulator's
//! ledger read over its control API.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::Client;

/// A running demo.
#[derive(Debug)]
pub struct Demo {
    child: Child,
    /// The API socket.
    pub socket: PathBuf,
    /// The HTTP/WebSocket API.
    pub http: SocketAddr,
    /// The HTTP API token file.
    pub token_file: PathBuf,
    /// The gateway simulator (`http://addr`), for `/sim/*`.
    pub sim: String,
    banner: Arc<Mutex<String>>,
}

impl Demo {
    /// Starts `daemon --demo` with extra allowed browser origins, and
    /// waits for its banner.
    pub fn start(daemon: &std::path::Path, allowed_origins: &[String]) -> Demo {
        let mut child = Command::new(daemon)
            .arg("--demo")
            .env("RUST_LOG", "warn")
            .env("YBPOS_DEMO_ALLOWED_ORIGINS", allowed_origins.join(","))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the demo");
        let out = child.stdout.take().expect("stdout");
        let banner = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let b = Arc::clone(&banner);
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let mut all = b.lock().expect("banner");
                all.push_str(&line);
                all.push('\n');
                if !sent && line.starts_with("The HIS examples") {
                    let _ = tx.send(all.clone());
                    sent = true;
                }
            }
        });
        let text = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the demo printed its banner");
        let field = |label: &str| -> String {
            text.lines()
                .find_map(|l| l.trim_start().strip_prefix(label))
                .unwrap_or_else(|| panic!("no {label:?} in the banner:\n{text}"))
                .trim_start_matches([' ', ':'])
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string()
        };
        let socket = PathBuf::from(field("API socket"));
        let http = field("HTTP/WebSocket API")
            .trim_start_matches("http://")
            .parse()
            .expect("http address");
        let token_file = PathBuf::from(
            text.lines()
                .find_map(|l| l.split("(token: ").nth(1))
                .and_then(|r| r.split(')').next())
                .expect("token file"),
        );
        let sim = text
            .lines()
            .find_map(|l| l.split("curl ").nth(1))
            .and_then(|r| r.strip_suffix("/sim/people)"))
            .expect("simulator address")
            .to_string();
        Demo {
            child,
            socket,
            http,
            token_file,
            sim,
            banner,
        }
    }

    /// Everything the demo printed.
    pub fn banner(&self) -> String {
        self.banner.lock().expect("banner").clone()
    }

    /// The HTTP API token.
    pub fn token(&self) -> String {
        std::fs::read_to_string(&self.token_file)
            .expect("token")
            .trim()
            .to_string()
    }

    /// A client on the API socket.
    pub async fn client(&self) -> Client {
        Client::connect(&self.socket).await.expect("connect")
    }

    /// Scans a test code of `kind` (`medical` for person `person`).
    pub async fn scan(&self, kind: &str, person: &str) -> Value {
        self.client()
            .await
            .call("demo.scan", json!({"kind": kind, "person": person}))
            .await
            .expect("demo.scan")
    }

    /// The simulator's ledger (`GET /sim/ledger`).
    pub async fn ledger(&self) -> Value {
        let text = reqwest::get(format!("{}/sim/ledger", self.sim))
            .await
            .expect("ledger")
            .text()
            .await
            .expect("ledger body");
        serde_json::from_str(&text).expect("ledger JSON")
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
