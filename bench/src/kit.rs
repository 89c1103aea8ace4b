//! What every figure uses: ptys, the daemon as a child process with its own
//! config, a blocking JSON-RPC client on the socket, the gateway stand-ins
//! (a null gateway and the simulator), percentiles and `/proc` readings.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// A pseudo-terminal: the bench writes into `master` as a scanner would;
/// the reader (daemon, relay) opens `path`, the slave side.
#[derive(Debug)]
pub struct Pty {
    /// The scanner's side.
    pub master: std::fs::File,
    /// The slave's device node (`/dev/pts/N`).
    pub path: PathBuf,
}

impl Pty {
    /// Opens a pair with the slave in raw mode (no echo, no line editing),
    /// as a serial scanner's tty is read.
    pub fn open() -> Result<Pty> {
        let p = nix::pty::openpty(None, None).context("openpty")?;
        let path = nix::unistd::ttyname(p.slave.as_fd()).context("ttyname")?;
        let mut t = nix::sys::termios::tcgetattr(p.slave.as_fd())?;
        nix::sys::termios::cfmakeraw(&mut t);
        nix::sys::termios::tcsetattr(p.slave.as_fd(), nix::sys::termios::SetArg::TCSANOW, &t)?;
        drop(p.slave);
        Ok(Pty {
            master: std::fs::File::from(p.master),
            path,
        })
    }

    /// Writes `bytes` as one scan.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.master.write_all(bytes)?;
        Ok(())
    }
}

/// Percentiles of a sample of durations.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pct {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest.
    pub max: Duration,
    /// Sample size.
    pub n: usize,
}

impl Pct {
    /// Of `v` (sorted here).
    pub fn of(v: &mut [Duration]) -> Pct {
        if v.is_empty() {
            return Pct::default();
        }
        v.sort();
        let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
        Pct {
            p50: at(0.5),
            p99: at(0.99),
            max: v[v.len() - 1],
            n: v.len(),
        }
    }
}

/// Milliseconds with three decimals, for the tables.
pub fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

/// A signed difference in milliseconds (`a - b`).
pub fn ms_diff(a: Duration, b: Duration) -> String {
    format!("{:+.3}", (a.as_secs_f64() - b.as_secs_f64()) * 1e3)
}

/// `a / b` with two decimals.
pub fn ratio(a: f64, b: f64) -> String {
    if b <= 0.0 {
        return "–".into();
    }
    format!("{:.2}×", a / b)
}

/// `pass` or `MISSED`.
pub fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

/// What the daemon's config says besides its scanners.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// The gateway's base URL.
    pub gateway_url: String,
    /// `(id, tty path)` of each serial scanner.
    pub scanners: Vec<(String, PathBuf)>,
    /// `[gateway] request_timeout_ms`.
    pub request_timeout_ms: u64,
    /// Extra lines for `[journal]`.
    pub journal: String,
}

impl DaemonConfig {
    /// Defaults for `gateway_url` and no scanner.
    pub fn new(gateway_url: &str) -> Self {
        DaemonConfig {
            gateway_url: gateway_url.to_string(),
            scanners: Vec::new(),
            request_timeout_ms: 5000,
            journal: String::new(),
        }
    }

    /// Writes `ybpos.toml` into `dir`; returns its path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        let mut scanners = String::new();
        for (id, path) in &self.scanners {
            scanners.push_str(&format!(
                "[[scanner]]\nid = \"{id}\"\ntransport = \"serial\"\npath = \"{}\"\nsuffix = \"\\r\"\n\n",
                path.display()
            ));
        }
        let text = format!(
            r#"[terminal]
fixmedins_code  = "P42130200001"
fixmedins_name  = "bench"
mdtrtarea_admvs = "421381"
opter           = "b1"

[gateway]
url = "{url}"
request_timeout_ms = {timeout}

{scanners}
[api]
socket = "api.sock"
http_listen = ""
max_connections = 1024

[journal]
path = "journal.db"
{journal}
"#,
            url = self.gateway_url,
            timeout = self.request_timeout_ms,
            journal = self.journal,
        );
        let p = dir.join("ybpos.toml");
        std::fs::write(&p, text)?;
        Ok(p)
    }
}

/// The daemon as a child process.
#[derive(Debug)]
pub struct Daemon {
    /// The child.
    pub child: Child,
    /// Its socket.
    pub socket: PathBuf,
    /// When it was spawned.
    pub spawned: Instant,
}

impl Daemon {
    /// Spawns `bin --config dir/ybpos.toml` with `env`, stderr to `dir/daemon.log`.
    pub fn spawn(bin: &Path, dir: &Path, env: &[(&str, String)]) -> Result<Daemon> {
        Daemon::spawn_with(bin, dir, env, false)
    }

    /// As [`Daemon::spawn`]; with `watchdog`, through `sh -c 'exec …'` so
    /// `WATCHDOG_PID` can name the daemon's own pid, as systemd sets it.
    pub fn spawn_with(
        bin: &Path,
        dir: &Path,
        env: &[(&str, String)],
        watchdog: bool,
    ) -> Result<Daemon> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("daemon.log"))?;
        // YBPOS_BENCH_WRAP="valgrind --tool=callgrind …" runs the daemon
        // under a profiler (instruction counts where wall time is noise).
        let wrap: Vec<String> = std::env::var("YBPOS_BENCH_WRAP")
            .map(|w| w.split_whitespace().map(String::from).collect())
            .unwrap_or_default();
        let mut cmd = if watchdog {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg("export WATCHDOG_PID=$$; exec \"$0\" \"$@\"")
                .arg(bin);
            c
        } else if let Some((prog, args)) = wrap.split_first() {
            let mut c = Command::new(prog);
            c.args(args).arg(bin);
            c
        } else {
            Command::new(bin)
        };
        cmd.arg("--config")
            .arg(dir.join("ybpos.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .env_remove("RUST_LOG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let spawned = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("spawn {}", bin.display()))?;
        Ok(Daemon {
            child,
            socket: dir.join("api.sock"),
            spawned,
        })
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the API answers, every scanner is connected and the
    /// gateway is online.
    pub fn wait_ready(&mut self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                bail!("the daemon exited: {st}");
            }
            if let Ok(mut c) = Rpc::connect(&self.socket)
                && let Ok(info) = c.call("system.info", json!({}))
                && info["gateway"]["state"] == "online"
                && info["scanners"]
                    .as_array()
                    .is_some_and(|s| s.iter().all(|s| s["state"] == "connected"))
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        bail!("the daemon was not ready within {within:?}")
    }

    /// SIGTERM, then waits (SIGKILL after 60 s: a profiler writes its data).
    pub fn stop(mut self) -> Result<()> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A blocking JSON-RPC client on the Unix socket.
#[derive(Debug)]
pub struct Rpc {
    rd: BufReader<UnixStream>,
    wr: UnixStream,
    next: u64,
}

impl Rpc {
    /// Connects.
    pub fn connect(path: &Path) -> Result<Rpc> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Rpc {
            rd: BufReader::new(s.try_clone()?),
            wr: s,
            next: 1,
        })
    }

    /// Sends a request; returns its id.
    pub fn send(&mut self, method: &str, params: Value) -> Result<u64> {
        let id = self.next;
        self.next += 1;
        let mut line =
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        line.push('\n');
        self.wr.write_all(line.as_bytes())?;
        Ok(id)
    }

    /// The next line, as sent.
    pub fn line(&mut self, buf: &mut String) -> Result<()> {
        buf.clear();
        if self.rd.read_line(buf)? == 0 {
            bail!("the daemon closed the connection");
        }
        Ok(())
    }

    /// Waits for the answer to `id` (notifications are skipped); `Err` for
    /// an error answer.
    pub fn answer(&mut self, id: u64) -> Result<Value> {
        let mut buf = String::new();
        loop {
            self.line(&mut buf)?;
            let v: Value = serde_json::from_str(&buf)?;
            if v["id"] == json!(id) {
                if let Some(e) = v.get("error") {
                    bail!("error answer: {e}");
                }
                return Ok(v["result"].clone());
            }
        }
    }

    /// The connection itself (to drain it without parsing).
    pub fn into_stream(self) -> UnixStream {
        self.wr
    }

    /// One call.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        let id = self.send(method, params)?;
        self.answer(id)
    }
}

/// Arrival times of business requests at the null gateway.
#[derive(Debug, Default)]
pub struct Arrivals {
    /// Business requests received (sign-in not counted).
    pub count: AtomicU64,
    /// Arrival time of the latest business request.
    pub last: Mutex<Option<Instant>>,
}

/// How the null gateway answers business requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NullMode {
    /// At once, with a settlement.
    Answer,
    /// Never (the daemon's request times out: outcome unknown).
    Hang,
}

/// A gateway that answers at once and does nothing else: sign-in succeeds,
/// every business request gets a settlement (2601 a plain success), so what
/// is measured is the daemon. Returns its base URL.
pub async fn null_gateway(arrivals: Arc<Arrivals>, mode: NullMode) -> Result<String> {
    use axum::body::Bytes;
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/fsi/api/{*rest}",
        post(move |body: Bytes| {
            let arrivals = Arc::clone(&arrivals);
            async move {
                let now = Instant::now();
                // The infno is near the front of the envelope; no full parse.
                let head = &body[..body.len().min(512)];
                let find = |k: &[u8]| head.windows(k.len()).any(|w| w == k);
                if find(b"\"infno\":\"9001\"") {
                    return r#"{"infcode":0,"output":{"signinoutb":{"sign_no":"1","sign_time":"2026-01-01 00:00:00"}}}"#.to_string();
                }
                if find(b"\"infno\":\"9002\"") || find(b"\"infno\":\"2601\"") {
                    return r#"{"infcode":0,"output":{}}"#.to_string();
                }
                arrivals.count.fetch_add(1, Ordering::Relaxed);
                *arrivals.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
                if mode == NullMode::Hang {
                    std::future::pending::<()>().await;
                }
                r#"{"infcode":0,"output":{"setlinfo":{"setl_id":"S1","medfee_sumamt":12.30,"acct_pay":2.30,"psn_cash_pay":10.00}}}"#.to_string()
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Ok(format!("http://{addr}/fsi/api"))
}

/// Resident memory of `pid` from `/proc/PID/status`, in KiB: (VmRSS,
/// RssAnon, RssFile).
pub fn rss_kib(pid: u32) -> Result<(u64, u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let get = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok((get("VmRSS:"), get("RssAnon:"), get("RssFile:")))
}

/// Resident KiB of `pid` by what it is (binary, libraries, heap, thread
/// stacks and arenas), from `/proc/PID/smaps`, largest first.
pub fn rss_by_mapping(pid: u32) -> Result<Vec<(String, u64)>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps"))?;
    let mut by: std::collections::BTreeMap<String, u64> = Default::default();
    let mut name = String::new();
    for l in s.lines() {
        let first = l.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            let path = l.split_whitespace().nth(5).unwrap_or("");
            name = if path.is_empty() {
                "anonymous (thread arenas, stacks, SQLite and tokio allocations)".into()
            } else if path.starts_with('[') {
                path.to_string()
            } else {
                Path::new(path)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default()
            };
        } else if let Some(v) = l.strip_prefix("Rss:") {
            let kib: u64 = v
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            *by.entry(name.clone()).or_default() += kib;
        }
    }
    let mut v: Vec<_> = by.into_iter().filter(|(_, k)| *k > 0).collect();
    v.sort_by_key(|(_, k)| std::cmp::Reverse(*k));
    Ok(v)
}

/// Context switches (voluntary + involuntary) of each thread of `pid`, by
/// thread id: each is one wake-up or preemption.
pub fn ctx_switches(pid: u32) -> Result<std::collections::BTreeMap<String, u64>> {
    let mut by = std::collections::BTreeMap::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let t = t?;
        let s = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let mut n = 0;
        for l in s.lines() {
            if l.starts_with("voluntary_ctxt_switches:")
                || l.starts_with("nonvoluntary_ctxt_switches:")
            {
                n += l
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        by.insert(t.file_name().to_string_lossy().into_owned(), n);
    }
    Ok(by)
}

/// Context switches between two readings of [`ctx_switches`]: threads
/// that ended in between count what they did before they ended as
/// nothing, threads that started count all of theirs.
pub fn ctx_delta(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
) -> u64 {
    after
        .iter()
        .map(|(t, n)| n.saturating_sub(before.get(t).copied().unwrap_or(0)))
        .sum()
}

/// Threads of `pid`, by name.
pub fn threads(pid: u32) -> Result<Vec<String>> {
    let mut v = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        v.push(
            std::fs::read_to_string(t?.path().join("comm"))
                .unwrap_or_default()
                .trim()
                .to_string(),
        );
    }
    v.sort();
    Ok(v)
}

/// CPU time (user + system) of process `pid` ("self" for the bench) so far.
pub fn cpu_time(pid: &str) -> Result<Duration> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command's closing parenthesis; utime, stime are 14, 15.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // USER_HZ is 100 on Linux.
    Ok(Duration::from_millis(ticks * 10))
}
