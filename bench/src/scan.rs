//! Figures 1 and 2: pty bytes → the `scan` event line on the socket, against
//! two bare relays of the same bytes (our own minimal Rust relay and socat),
//! and the burst at the physical limit (8 scanners × 1,000 codes/s).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::kit::{Daemon, DaemonConfig, Pct, Pty, Rpc, ms, ms_diff, ratio, verdict};
use crate::{Bench, Report};

/// The bare relay: reads the tty, writes what it read to the socket. Run as
/// `ybpos-bench relay PTY SOCKET`; blocking reads and writes, no framing.
pub fn relay(pty: &Path, sock: &Path) -> Result<()> {
    let mut tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::fcntl::OFlag::O_NOCTTY.bits())
        .open(pty)
        .with_context(|| format!("open {}", pty.display()))?;
    let mut out = UnixStream::connect(sock)?;
    let mut buf = [0u8; 4096];
    loop {
        let n = tty.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n])?;
    }
}

/// One path under test: write a code into its pty, read it back where it arrives.
trait Hop {
    fn round(&mut self, code: &str) -> Result<Duration>;
}

/// A bare relay (process) and the socket end it writes to.
struct Bare {
    pty: Pty,
    rd: BufReader<UnixStream>,
    child: Child,
    buf: Vec<u8>,
}

impl Bare {
    fn start(dir: &Path, name: &str, cmd: impl FnOnce(&Path, &Path) -> Command) -> Result<Bare> {
        let pty = Pty::open()?;
        let sock = dir.join(format!("{name}.sock"));
        let l = UnixListener::bind(&sock)?;
        let child = cmd(&pty.path, &sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawn the {name} relay"))?;
        l.set_nonblocking(true)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let s = loop {
            match l.accept() {
                Ok((s, _)) => break s,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => bail!("the {name} relay did not connect: {e}"),
            }
        };
        s.set_nonblocking(false)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        // The relay opens the tty after connecting: give it time to.
        std::thread::sleep(Duration::from_millis(200));
        Ok(Bare {
            pty,
            rd: BufReader::new(s),
            child,
            buf: Vec::new(),
        })
    }
}

impl Hop for Bare {
    fn round(&mut self, code: &str) -> Result<Duration> {
        let bytes = format!("{code}\r");
        let t0 = Instant::now();
        self.pty.write(bytes.as_bytes())?;
        self.buf.clear();
        self.rd.read_until(b'\r', &mut self.buf)?;
        let t = t0.elapsed();
        if !self.buf.ends_with(bytes.as_bytes()) {
            bail!("relay gave {:?}", String::from_utf8_lossy(&self.buf));
        }
        Ok(t)
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The daemon's path: pty → ybposd → `scan` event on a subscribed connection.
struct ViaDaemon {
    pty: Pty,
    sub: Rpc,
    line: String,
}

impl Hop for ViaDaemon {
    fn round(&mut self, code: &str) -> Result<Duration> {
        let bytes = format!("{code}\r");
        let want = format!("\"text\":\"{code}\"");
        let t0 = Instant::now();
        self.pty.write(bytes.as_bytes())?;
        loop {
            self.sub.line(&mut self.line)?;
            if self.line.contains(&want) {
                return Ok(t0.elapsed());
            }
        }
    }
}

/// Subscribes a new connection to `topics`.
pub fn subscribe(socket: &Path, topics: &[&str]) -> Result<Rpc> {
    let mut c = Rpc::connect(socket)?;
    c.call("events.subscribe", json!({ "topics": topics }))?;
    Ok(c)
}

/// A daemon reading `n` pty scanners, against `gateway_url`.
pub fn daemon_with_scanners(
    b: &Bench,
    dir: &Path,
    gateway_url: &str,
    n: usize,
) -> Result<(Daemon, Vec<Pty>)> {
    daemon_with_env(b, dir, gateway_url, n, &[])
}

/// As [`daemon_with_scanners`], with extra environment for the daemon.
pub fn daemon_with_env(
    b: &Bench,
    dir: &Path,
    gateway_url: &str,
    n: usize,
    env: &[(&str, String)],
) -> Result<(Daemon, Vec<Pty>)> {
    let ptys: Vec<Pty> = (0..n).map(|_| Pty::open()).collect::<Result<_>>()?;
    let mut cfg = DaemonConfig::new(gateway_url);
    cfg.scanners = ptys
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("s{i}"), p.path.clone()))
        .collect();
    cfg.write(dir)?;
    let mut d = Daemon::spawn(&b.ybposd, dir, env)?;
    d.wait_ready(Duration::from_secs(30))?;
    Ok((d, ptys))
}

/// A code text of a typical length (28 characters), distinct per `n`
/// (de-duplication is per scanner and text).
pub fn code(tag: &str, n: u64) -> String {
    format!("{tag}{n:0>width$}", width = 28 - tag.len())
}

/// Figure 1.
pub fn scan_latency(b: &Bench, r: &mut Report, gateway_url: &str) -> Result<()> {
    let n = if b.short { 100 } else { 2000 };
    let dir = tempfile::tempdir_in(&b.tmp)?;
    let (daemon, mut ptys) = daemon_with_scanners(b, dir.path(), gateway_url, 1)?;
    let mut paths: Vec<(&str, Box<dyn Hop>)> = Vec::new();
    paths.push((
        "ybposd (pty → `scan` event on the socket)",
        Box::new(ViaDaemon {
            pty: ptys.remove(0),
            sub: subscribe(&daemon.socket, &["scan"])?,
            line: String::new(),
        }),
    ));
    // The same daemon logging only warnings: what the `info` log costs.
    let quiet_dir = tempfile::tempdir_in(&b.tmp)?;
    let (quiet, mut quiet_ptys) = daemon_with_env(
        b,
        quiet_dir.path(),
        gateway_url,
        1,
        &[("RUST_LOG", "warn".into())],
    )?;
    paths.push((
        "ybposd with `RUST_LOG=warn` (diagnostic: what `info` logging costs)",
        Box::new(ViaDaemon {
            pty: quiet_ptys.remove(0),
            sub: subscribe(&quiet.socket, &["scan"])?,
            line: String::new(),
        }),
    ));
    let exe = std::env::current_exe()?;
    paths.push((
        "bare Rust relay (blocking read → write)",
        Box::new(Bare::start(dir.path(), "rust", |pty, sock| {
            let mut c = Command::new(&exe);
            c.arg("relay").arg(pty).arg(sock);
            c
        })?),
    ));
    let socat = which("socat");
    if let Some(socat) = &socat {
        paths.push((
            "socat (pty → Unix socket)",
            Box::new(Bare::start(dir.path(), "socat", |pty, sock| {
                let mut c = Command::new(socat);
                c.arg("-u")
                    .arg(format!("OPEN:{},rawer,noctty", pty.display()))
                    .arg(format!("UNIX-CONNECT:{}", sock.display()));
                c
            })?),
        ));
    }
    // Warm-up, then rounds interleaved across the paths so load changes
    // hit all of them alike; a person-like pause between scans.
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); paths.len()];
    for i in 0..(n as u64 + 20) {
        for (k, (_, p)) in paths.iter_mut().enumerate() {
            let t = p.round(&code(&format!("L{k}-"), i))?;
            if i >= 20 {
                samples[k].push(t);
            }
            std::thread::sleep(Duration::from_micros(2000));
        }
    }
    let pct: Vec<Pct> = samples.iter_mut().map(|s| Pct::of(s)).collect();
    let mut t = format!(
        "{n} scans of a 28-character code + CR, one at a time (2 ms apart), the paths interleaved round by round.\n\n\
         | path | p50 ms | p99 ms | max ms |\n|---|---|---|---|\n"
    );
    for ((name, _), p) in paths.iter().zip(&pct) {
        t.push_str(&format!(
            "| {name} | {} | {} | {} |\n",
            ms(p.p50),
            ms(p.p99),
            ms(p.max)
        ));
    }
    t.push_str("\n| against | ratio p50 | ratio p99 | added p50 ms | goal | |\n|---|---|---|---|---|---|\n");
    for (k, (name, _)) in paths.iter().enumerate().skip(2) {
        let (d, base) = (pct[0], pct[k]);
        let ok = d.p99.as_secs_f64() <= 1.3 * base.p99.as_secs_f64()
            && d.p50.saturating_sub(base.p50) <= Duration::from_micros(100);
        t.push_str(&format!(
            "| {name} | {} | {} | {} | ≤ 1.3× p99, ≤ +0.100 ms p50 | {} |\n",
            ratio(d.p50.as_secs_f64(), base.p50.as_secs_f64()),
            ratio(d.p99.as_secs_f64(), base.p99.as_secs_f64()),
            ms_diff(d.p50, base.p50),
            verdict(ok)
        ));
    }
    if socat.is_none() {
        t.push_str(
            "\nsocat is not installed here: its baseline is missing (`apt-get install socat`).\n",
        );
    }
    let (q, relay) = (pct[1], pct[2]);
    t.push_str(&format!(
        "\nDiagnostic, same run: with `RUST_LOG=warn` the daemon's ratio to the Rust relay is {} at p50 and {} at \
         p99 ({} ms added at p50); the difference between the two ybposd rows is what `info`-level tracing costs \
         on this path.\n",
        ratio(q.p50.as_secs_f64(), relay.p50.as_secs_f64()),
        ratio(q.p99.as_secs_f64(), relay.p99.as_secs_f64()),
        ms_diff(q.p50, relay.p50),
    ));
    r.figure("1. Scan → `scan` event vs a bare relay", &t);
    drop(paths);
    quiet.stop()?;
    daemon.stop()
}

/// `PATH` lookup.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// What the burst's reader found.
#[derive(Debug, Default)]
struct Tally {
    got: Vec<u64>,
    seen: Vec<bool>,
    lost: u64,
    dup: u64,
    reordered: u64,
    other: u64,
    lat: Vec<Duration>,
}

/// Figure 2: `rate` codes/s on each of 8 ptys for `secs`; every event
/// checked for loss, duplication and order per scanner.
pub fn burst(b: &Bench, r: &mut Report, gateway_url: &str) -> Result<()> {
    const SCANNERS: usize = 8;
    let rate = 1000u64;
    let secs = if b.short { 2 } else { 60 };
    let per = rate * secs;
    let dir = tempfile::tempdir_in(&b.tmp)?;
    let (daemon, ptys) = daemon_with_scanners(b, dir.path(), gateway_url, SCANNERS)?;
    let mut sub = subscribe(&daemon.socket, &["scan"])?;
    // Write times, per scanner and sequence number (ns since `epoch`).
    let epoch = Instant::now();
    let written: Arc<Vec<Vec<AtomicU64>>> = Arc::new(
        (0..SCANNERS)
            .map(|_| (0..per).map(|_| AtomicU64::new(0)).collect())
            .collect(),
    );
    let behind = Arc::new(Mutex::new(Duration::ZERO));
    let start = epoch + Duration::from_millis(200);
    let writers: Vec<_> = ptys
        .into_iter()
        .enumerate()
        .map(|(s, mut pty)| {
            let written = Arc::clone(&written);
            let behind = Arc::clone(&behind);
            std::thread::spawn(move || -> Result<()> {
                let mut worst = Duration::ZERO;
                for i in 0..per {
                    let due = start + Duration::from_micros(i * 1_000_000 / rate);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    } else {
                        worst = worst.max(now - due);
                    }
                    let line = format!("{}\r", code(&format!("B{s}-"), i));
                    written[s][i as usize]
                        .store(epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    pty.write(line.as_bytes())?;
                }
                let mut b = behind.lock().unwrap_or_else(|e| e.into_inner());
                *b = (*b).max(worst);
                // Keep the pty open until the reader is done.
                std::thread::sleep(Duration::from_secs(3));
                Ok(())
            })
        })
        .collect();
    let mut tally: Vec<Tally> = (0..SCANNERS)
        .map(|_| Tally {
            seen: vec![false; per as usize],
            ..Tally::default()
        })
        .collect();
    let total = per * SCANNERS as u64;
    let mut seen = 0u64;
    let mut line = String::new();
    let deadline = start + Duration::from_secs(secs + 10);
    while seen < total && Instant::now() < deadline {
        if sub.line(&mut line).is_err() {
            break;
        }
        let at = epoch.elapsed().as_nanos() as u64;
        let v: Value = serde_json::from_str(&line)?;
        let p = &v["params"];
        if p["topic"] != "scan" {
            tally[0].other += 1;
            continue;
        }
        let text = p["text"].as_str().unwrap_or("");
        let Some((s, i)) = parse_burst(text) else {
            tally[0].other += 1;
            continue;
        };
        let t = &mut tally[s];
        let expect = t.got.last().map_or(0, |l| l + 1);
        if i >= per {
            t.other += 1;
            continue;
        }
        if t.seen[i as usize] {
            t.dup += 1;
            continue;
        }
        t.seen[i as usize] = true;
        if i != expect {
            if i < expect {
                t.reordered += 1;
            } else {
                t.lost += i - expect;
            }
        }
        t.got.push(i);
        seen += 1;
        let w = written[s][i as usize].load(Ordering::Relaxed);
        t.lat.push(Duration::from_nanos(at.saturating_sub(w)));
    }
    for w in writers {
        w.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
    }
    let mut lat: Vec<Duration> = tally.iter_mut().flat_map(|t| t.lat.drain(..)).collect();
    let pct = Pct::of(&mut lat);
    let received: u64 = tally.iter().map(|t| t.got.len() as u64).sum();
    let lost = total - received;
    let dup: u64 = tally.iter().map(|t| t.dup).sum();
    let reordered: u64 = tally.iter().map(|t| t.reordered).sum();
    let other: u64 = tally.iter().map(|t| t.other).sum();
    let behind = *behind.lock().unwrap_or_else(|e| e.into_inner());
    let ok = lost == 0 && dup == 0 && reordered == 0;
    let t = format!(
        "{SCANNERS} pty scanners, each writing a distinct 28-character code + CR every 1 ms ({rate}/s) for {secs} s \
         ({total} codes); one subscriber on topic `scan` checks every event. The writers' worst lateness against \
         their schedule was {} ms (a pty write that blocks shows here).\n\n\
         | scans sent | events received | lost | duplicated | out of order | other events | event latency p50 ms | p99 ms | max ms | goal | |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n\
         | {total} | {received} | {lost} | {dup} | {reordered} | {other} | {} | {} | {} | 0 lost, 0 duplicated, order kept | {} |\n",
        ms(behind),
        ms(pct.p50),
        ms(pct.p99),
        ms(pct.max),
        verdict(ok)
    );
    r.figure(
        "2. Burst at the physical limit: 8 scanners × 1,000 codes/s",
        &t,
    );
    daemon.stop()
}

fn parse_burst(text: &str) -> Option<(usize, u64)> {
    let rest = text.strip_prefix('B')?;
    let (s, i) = rest.split_once('-')?;
    Some((
        s.parse().ok()?,
        i.trim_start_matches('0').parse().unwrap_or(0),
    ))
}
