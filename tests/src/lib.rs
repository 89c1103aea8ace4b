//! Test kit for end-to-end tests: a gateway simulator, a pty scanner, the
//! daemon as a child process with its logs captured, and an async client;
//! [`web`]: clients of the HTTP/WebSocket API and a Prometheus text reader;
//! [`demo`]: `ybposd --demo` as a child process.

pub mod demo;
pub mod money;
pub mod web;
pub use web::{Http, Ws, WsRead, parse_prometheus};

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use serialport::{SerialPort, TTYPort};
use settlement_client::auth::Signer;
use settlement_sim::{RunningSim, SimSettings, Simulator};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

/// The daemon binary built for the tests (expands in the test crate, where
/// cargo defines `CARGO_BIN_EXE_*`).
#[macro_export]
macro_rules! daemon_bin {
    () => {
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_ybposd-under-test"))
    };
}

/// Options of a test terminal.
#[derive(Debug, Clone)]
pub struct Options {
    /// The daemon binary (`daemon_bin!()`).
    pub daemon: PathBuf,
    /// `[codes] dedupe_window_ms`.
    pub dedupe_window_ms: u64,
    /// Extra TOML appended to the config.
    pub extra_toml: String,
    /// Serve the HTTP/WebSocket API on a free loopback port
    /// (`http_listen = "127.0.0.1:0"`, token file `api-token` in the folder).
    pub http: bool,
    /// Extra lines for the `[api]` table (e.g. `allowed_origins = [...]`).
    pub api_toml: String,
    /// `[gateway] request_timeout_ms`.
    pub request_timeout_ms: u64,
    /// Extra lines for the `[journal]` table (e.g. `reversal_grace_ms = 500`).
    pub journal_toml: String,
    /// `RUST_LOG` of the daemon (default `trace`, so log tests see everything).
    pub log: String,
    /// Extra environment of the daemon process (e.g. libfaketime's).
    pub env: Vec<(String, String)>,
    /// Use this gateway (another terminal's simulator) instead of this
    /// terminal's own.
    pub gateway_url: Option<String>,
    /// Extra lines for the `[terminal]` table (e.g. `msgid_node = 1`).
    pub terminal_toml: String,
}

impl Options {
    /// Defaults, running `daemon`.
    pub fn new(daemon: PathBuf) -> Self {
        Options {
            daemon,
            dedupe_window_ms: 100,
            extra_toml: String::new(),
            http: false,
            api_toml: String::new(),
            request_timeout_ms: 5000,
            journal_toml: String::new(),
            log: "trace".into(),
            env: Vec::new(),
            gateway_url: None,
            terminal_toml: String::new(),
        }
    }
}

/// A whole test terminal: simulator, pty scanner, daemon child.
#[derive(Debug)]
pub struct Terminal {
    /// Temporary folder holding config, socket and journal.
    pub dir: tempfile::TempDir,
    /// The gateway simulator.
    pub sim: RunningSim,
    /// The scanner's side of the pty.
    pub scanner: TTYPort,
    /// The API socket.
    pub socket: PathBuf,
    /// The config file.
    pub config: PathBuf,
    daemon: PathBuf,
    http: bool,
    log: String,
    env: Vec<(String, String)>,
    child: Option<Child>,
    logs: Arc<Mutex<Vec<u8>>>,
}

impl Terminal {
    /// Starts everything and waits until the scanner is connected and the gateway signed in.
    pub async fn start(opts: Options) -> Terminal {
        let sim = Simulator::new(SimSettings::default(), Signer::None)
            .bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("simulator");
        let (master, slave) = TTYPort::pair().expect("pty");
        let pty = slave.name().expect("pty name");
        drop(slave);
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("ybpos.toml");
        let text = format!(
            r#"[terminal]
fixmedins_code  = "P42130200001"
fixmedins_name  = "测试药房"
mdtrtarea_admvs = "421381"
opter           = "t1"
{terminal}

[gateway]
url = "{url}"
request_timeout_ms = {timeout}

[[scanner]]
id = "counter"
transport = "serial"
path = "{pty}"
suffix = "\r"

[api]
socket = "api.sock"
{http}
{api}

[journal]
path = "journal.db"
{journal}

[codes]
dedupe_window_ms = {dedupe}
{extra}
"#,
            url = opts.gateway_url.clone().unwrap_or_else(|| sim.base_url()),
            terminal = opts.terminal_toml,
            dedupe = opts.dedupe_window_ms,
            extra = opts.extra_toml,
            http = if opts.http {
                "http_listen = \"127.0.0.1:0\"\ntoken_file = \"api-token\""
            } else {
                "http_listen = \"\""
            },
            api = opts.api_toml,
            timeout = opts.request_timeout_ms,
            journal = opts.journal_toml,
        );
        std::fs::write(&config, text).expect("config");
        let socket = dir.path().join("api.sock");
        let mut t = Terminal {
            dir,
            sim,
            scanner: master,
            socket,
            config,
            daemon: opts.daemon.clone(),
            log: opts.log.clone(),
            env: opts.env.clone(),
            http: opts.http,
            child: None,
            logs: Arc::new(Mutex::new(Vec::new())),
        };
        t.spawn_daemon();
        t.wait_ready().await;
        t
    }

    /// Starts the daemon child (again).
    pub fn spawn_daemon(&mut self) {
        self.spawn_daemon_env(&[]);
    }

    /// Starts the daemon child with extra environment (e.g. `YBPOS_CRASH_AT`),
    /// besides the options' own.
    pub fn spawn_daemon_env(&mut self, env: &[(&str, &str)]) {
        let mut cmd = Command::new(&self.daemon);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", &self.log)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn daemon");
        let mut err = child.stderr.take().expect("stderr");
        let logs = Arc::clone(&self.logs);
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                logs.lock().expect("logs").extend_from_slice(&buf[..n]);
            }
        });
        self.child = Some(child);
    }

    /// Waits until the API answers, the scanner is connected and the gateway is online.
    pub async fn wait_ready(&self) {
        for _ in 0..500 {
            if let Ok(mut c) = Client::connect(&self.socket).await
                && let Ok(info) = c.call("system.info", json!({})).await
                && info["scanners"][0]["state"] == "connected"
                && info["gateway"]["state"] == "online"
                && (!self.http || self.http_addr().is_some())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("daemon not ready; logs:\n{}", self.logs());
    }

    /// Waits until the journal has no unresolved record (recovery finished).
    pub async fn wait_resolved(&self, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mut c = self.client().await;
            let info = c.call("system.info", json!({})).await.expect("system.info");
            if info["journal"]["unresolved"] == 0 {
                return info;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "records still unresolved after {within:?}: {}",
                    info["journal"]
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the daemon child to exit (after a crash point fired).
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(st)) = child.try_wait() {
                self.child = None;
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    /// The HTTP API's address, from the daemon's "HTTP API listening." log line.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        let logs = self.logs();
        let line = logs
            .lines()
            .rev()
            .find(|l| l.contains("HTTP API listening."))?;
        let at = line.find(" addr=")? + " addr=".len();
        line[at..].split_whitespace().next()?.parse().ok()
    }

    /// The HTTP API token (from the file the daemon created).
    pub fn api_token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("api-token"))
            .expect("token file")
            .trim()
            .to_string()
    }

    /// An HTTP client for this terminal's HTTP API.
    pub fn http(&self) -> Http {
        Http::new(
            self.http_addr().expect("the HTTP API is on"),
            self.api_token(),
        )
    }

    /// Everything the daemon logged so far.
    pub fn logs(&self) -> String {
        String::from_utf8_lossy(&self.logs.lock().expect("logs")).into_owned()
    }

    /// Writes bytes into the scanner side of the pty, as a scanner would.
    pub fn scan_bytes(&mut self, bytes: &[u8]) {
        self.scanner.write_all(bytes).expect("pty write");
        self.scanner.flush().expect("pty flush");
    }

    /// Scans `text` with the CR suffix.
    pub fn scan(&mut self, text: &str) {
        self.scan_bytes(format!("{text}\r").as_bytes());
    }

    /// A new client.
    pub async fn client(&self) -> Client {
        Client::connect(&self.socket).await.expect("connect")
    }

    /// Stops the daemon with SIGTERM and waits for it.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..500 {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait().ok()
    }

    /// Kills the daemon with SIGKILL (crash tests).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The daemon child's pid, while it runs.
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// Forgets the captured logs (long crash loops).
    pub fn clear_logs(&self) {
        self.logs.lock().expect("logs").clear();
    }

    /// Whether the daemon child is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The folder's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An async JSON-RPC client over the Unix socket.
#[derive(Debug)]
pub struct Client {
    rd: BufReader<OwnedReadHalf>,
    wr: OwnedWriteHalf,
    next_id: u64,
    /// Notifications received while waiting for answers.
    pub notifications: Vec<Value>,
}

impl Client {
    /// Connects.
    pub async fn connect(path: &Path) -> std::io::Result<Client> {
        let s = UnixStream::connect(path).await?;
        let (rd, wr) = s.into_split();
        Ok(Client {
            rd: BufReader::new(rd),
            wr,
            next_id: 1,
            notifications: Vec::new(),
        })
    }

    /// Sends raw bytes (for garbage tests).
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.try_send_raw(bytes).await.expect("write");
    }

    /// Sends raw bytes; the daemon may have closed the connection.
    pub async fn try_send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.wr.write_all(bytes).await
    }

    /// Reads the next message; `None` when the daemon closed the connection.
    pub async fn read(&mut self) -> Option<Value> {
        let mut line = String::new();
        match tokio::time::timeout(Duration::from_secs(30), self.rd.read_line(&mut line)).await {
            Ok(Ok(0)) | Ok(Err(_)) => None,
            Ok(Ok(_)) => Some(serde_json::from_str(&line).expect("daemon sent JSON")),
            Err(_) => panic!("no message from the daemon within 30 s"),
        }
    }

    /// Reads the next line exactly as the daemon sent it (golden tests).
    pub async fn read_line_raw(&mut self) -> Option<String> {
        let mut line = String::new();
        match tokio::time::timeout(Duration::from_secs(30), self.rd.read_line(&mut line)).await {
            Ok(Ok(0)) | Ok(Err(_)) => None,
            Ok(Ok(_)) => Some(line.trim_end_matches('\n').to_string()),
            Err(_) => panic!("no message from the daemon within 30 s"),
        }
    }

    /// One call; the answer line exactly as the daemon sent it (notifications
    /// that arrive first are kept in [`Client::notifications`]).
    pub async fn call_raw(&mut self, method: &str, params: Value) -> String {
        let id = self.send(method, params).await;
        loop {
            let line = self
                .read_line_raw()
                .await
                .expect("connection closed before the answer");
            let m: Value = serde_json::from_str(&line).expect("daemon sent JSON");
            if m.get("id") == Some(&json!(id)) {
                return line;
            }
            if m.get("method").is_some() {
                self.notifications.push(m);
            }
        }
    }

    /// Sends a request without waiting; returns its id.
    pub async fn send(&mut self, method: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut line =
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        line.push('\n');
        self.send_raw(line.as_bytes()).await;
        id
    }

    /// Waits for the answer to `id`; `Err` holds the error object.
    pub async fn answer(&mut self, id: u64) -> Result<Value, Value> {
        loop {
            let m = self
                .read()
                .await
                .expect("connection closed before the answer");
            if m.get("id") == Some(&json!(id)) {
                return match m.get("error") {
                    Some(e) => Err(e.clone()),
                    None => Ok(m["result"].clone()),
                };
            }
            if m.get("method").is_some() {
                self.notifications.push(m);
            }
        }
    }

    /// One call; `None` when the daemon went away before answering.
    pub async fn try_call(&mut self, method: &str, params: Value) -> Option<Result<Value, Value>> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line =
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        line.push('\n');
        self.try_send_raw(line.as_bytes()).await.ok()?;
        loop {
            let m = self.read().await?;
            if m.get("id") == Some(&json!(id)) {
                return Some(match m.get("error") {
                    Some(e) => Err(e.clone()),
                    None => Ok(m["result"].clone()),
                });
            }
        }
    }

    /// One call.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let id = self.send(method, params).await;
        self.answer(id).await
    }

    /// Waits for a notification matching `pred`.
    pub async fn notification(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.notifications.iter().position(&pred) {
            return self.notifications.remove(i);
        }
        loop {
            let m = self.read().await.expect("connection closed");
            if m.get("method").is_some() && pred(&m) {
                return m;
            }
        }
    }
}

/// Polls `scanner.list` on `c` until scanner 0 is armed by a wait.
pub async fn until_armed(c: &mut Client) {
    for _ in 0..500 {
        if let Ok(v) = c.call("scanner.list", json!({})).await
            && v[0]["armed"] == true
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the scanner was never armed");
}
