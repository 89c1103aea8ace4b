//! Figure 6: exec → `READY=1` (sd_notify) with an empty journal and with
//! 1,000 unresolved records (resolution continuing after), against the same
//! binary's `--check-config` (exec, config, exit) in the same run; idle
//! wake-ups per second against the watchdog's pings.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::json;

use crate::kit::{
    Arrivals, Daemon, DaemonConfig, NullMode, Pct, Pty, Rpc, ctx_delta, ctx_switches, ms,
    null_gateway, ratio, verdict,
};
use crate::txn::submit_params;
use crate::{Bench, Report};

/// A notify socket like systemd's: the daemon's `READY=1` and `WATCHDOG=1`.
struct Notify {
    sock: UnixDatagram,
}

impl Notify {
    fn bind(dir: &Path) -> Result<(Notify, String)> {
        let p = dir.join("notify.sock");
        let _ = std::fs::remove_file(&p);
        let sock = UnixDatagram::bind(&p)?;
        Ok((Notify { sock }, p.display().to_string()))
    }

    /// Waits for a datagram containing `what`; when it came.
    fn wait_for(&self, what: &str, within: Duration) -> Result<Instant> {
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("no {what} within {within:?}");
            }
            self.sock.set_read_timeout(Some(left))?;
            let n = self.sock.recv(&mut buf)?;
            if String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == what)
            {
                return Ok(Instant::now());
            }
        }
    }

    /// Counts datagrams containing `what` during `d` (after dropping
    /// what came before).
    fn count(&self, what: &str, d: Duration) -> Result<u64> {
        let mut buf = [0u8; 4096];
        self.sock.set_nonblocking(true)?;
        while self.sock.recv(&mut buf).is_ok() {}
        self.sock.set_nonblocking(false)?;
        let end = Instant::now() + d;
        let mut n = 0;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(n);
            }
            self.sock.set_read_timeout(Some(left))?;
            match self.sock.recv(&mut buf) {
                Ok(k) => {
                    if String::from_utf8_lossy(&buf[..k])
                        .lines()
                        .any(|l| l == what)
                    {
                        n += 1;
                    }
                }
                Err(_) => return Ok(n),
            }
        }
    }
}

/// Figure 6.
pub fn start(b: &Bench, r: &mut Report) -> Result<()> {
    let reps = if b.short { 3 } else { 20 };
    let records = if b.short { 100 } else { 1000 };
    let idle_secs = if b.short { 3 } else { 20 };
    let url = b.rt.block_on(null_gateway(
        Arc::new(Arrivals::default()),
        NullMode::Answer,
    ))?;
    let pty = Pty::open()?;

    // Empty journal (a new folder each time: the file is created and
    // migrated), against `--check-config` of the same config.
    let (mut ready, mut check) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let dir = tempfile::tempdir_in(&b.tmp)?;
        let mut cfg = DaemonConfig::new(&url);
        cfg.scanners = vec![("s0".into(), pty.path.clone())];
        let config = cfg.write(dir.path())?;
        let t0 = Instant::now();
        let st = Command::new(&b.ybposd)
            .arg("--check-config")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        check.push(t0.elapsed());
        if !st.success() {
            bail!("--check-config failed: {st}");
        }
        let (notify, path) = Notify::bind(dir.path())?;
        let d = Daemon::spawn(&b.ybposd, dir.path(), &[("NOTIFY_SOCKET", path)])?;
        let at = notify.wait_for("READY=1", Duration::from_secs(30))?;
        ready.push(at.duration_since(d.spawned));
        d.stop()?;
    }
    let (ready, check) = (Pct::of(&mut ready), Pct::of(&mut check));

    // Idle wake-ups: without a watchdog, then with systemd's of 2 s (a
    // ping every second).
    let mut idle = Vec::new();
    for watchdog in [false, true] {
        let dir = tempfile::tempdir_in(&b.tmp)?;
        let mut cfg = DaemonConfig::new(&url);
        cfg.scanners = vec![("s0".into(), pty.path.clone())];
        cfg.write(dir.path())?;
        let (notify, path) = Notify::bind(dir.path())?;
        let mut env = vec![("NOTIFY_SOCKET", path)];
        if watchdog {
            env.push(("WATCHDOG_USEC", "2000000".into()));
        }
        let d = Daemon::spawn_with(&b.ybposd, dir.path(), &env, watchdog)?;
        notify.wait_for("READY=1", Duration::from_secs(30))?;
        std::thread::sleep(Duration::from_secs(2));
        let c0 = ctx_switches(d.pid())?;
        let pings = notify.count("WATCHDOG=1", Duration::from_secs(idle_secs))?;
        let wakeups = ctx_delta(&c0, &ctx_switches(d.pid())?);
        d.stop()?;
        idle.push((
            wakeups as f64 / idle_secs as f64,
            pings as f64 / idle_secs as f64,
        ));
    }
    let (quiet, _) = idle[0];
    let (wps, pps) = idle[1];

    // 1,000 unresolved records: a gateway that takes every settlement and
    // never answers (each ends `unknown` after the 200 ms request timeout),
    // a grace period long enough that none is resolved, then a clean stop.
    let hang =
        b.rt.block_on(null_gateway(Arc::new(Arrivals::default()), NullMode::Hang))?;
    let dir = tempfile::tempdir_in(&b.tmp)?;
    let mut cfg = DaemonConfig::new(&hang);
    cfg.request_timeout_ms = 200;
    cfg.journal = "reversal_grace_ms = 3600000".into();
    cfg.write(dir.path())?;
    let mut d = Daemon::spawn(&b.ybposd, dir.path(), &[])?;
    d.wait_ready(Duration::from_secs(30))?;
    let per = records / 50;
    let threads: Vec<_> = (0..50)
        .map(|k| {
            let socket = d.socket.clone();
            std::thread::spawn(move || -> Result<()> {
                let mut c = Rpc::connect(&socket)?;
                for i in 0..per {
                    // `unknown` (a lost answer); counted below from the journal.
                    c.call("txn.submit", submit_params(&format!("u-{k}-{i}")))?;
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| anyhow::anyhow!("client panicked"))??;
    }
    let mut c = Rpc::connect(&d.socket)?;
    let unresolved = c.call("system.info", json!({}))?["journal"]["unresolved"].clone();
    drop(c);
    d.stop()?;
    // The same journal as a power cut leaves it: every record `sent` (its
    // request may have reached the gateway), so each must be journaled
    // `unknown` before READY.
    let cut = tempfile::tempdir_in(&b.tmp)?;
    power_cut_copy(dir.path(), cut.path())?;
    // Restart against a gateway that answers (2601 succeeds), grace 0.
    cfg.gateway_url = url.clone();
    cfg.journal = "reversal_grace_ms = 0".into();
    cfg.write(dir.path())?;
    let (d, to_ready, first, mut c) = restart(b, dir.path())?;
    let resolved_at = loop {
        let info = c.call("system.info", json!({}))?;
        if info["journal"]["unresolved"] == 0 {
            break d.spawned.elapsed();
        }
        if d.spawned.elapsed() > Duration::from_secs(300) {
            bail!("records still unresolved after 300 s: {}", info["journal"]);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(c);
    d.stop()?;
    cfg.write(cut.path())?;
    let (d, cut_ready, cut_first, c) = restart(b, cut.path())?;
    drop(c);
    d.stop()?;

    let t = format!(
        "Time from `exec` to the daemon's `READY=1` on a notify socket the bench holds (as systemd's); \
         baseline: the same binary's `--check-config` on the same config (exec, config parse, exit), {reps} times \
         each, interleaved.\n\n\
         | start | p50 ms | p99 (max of {reps}) ms | vs `--check-config` p50 | goal | |\n|---|---|---|---|---|---|\n\
         | `--check-config` (baseline) | {} | {} | | | |\n\
         | empty journal (created and migrated) | {} | {} | {} | ≤ 50 ms | {} |\n\
         | {unresolved} unresolved records (`unknown` 2102s: a gateway outage) | {} | | {} | ≤ 500 ms | {} |\n\
         | the same {unresolved} records `sent` (a power cut: each journaled `unknown` before READY) | {} | | {} | \
         ≤ 500 ms | {} |\n\n\
         With the {unresolved} records, `system.info` right after READY still counted {first} unresolved ({cut_first} \
         after the power cut); the resolver (2601 at a null gateway, 8 at a time) had them all `reversed` {} ms \
         after exec: resolution continues after READY.\n\n\
         **Idle wake-ups** (one scanner connected, no client; context switches of all threads over {idle_secs} s, \
         from `/proc/PID/task/*/status`): without a watchdog **{quiet:.2}/s**; with systemd's watchdog \
         (`WATCHDOG_USEC=2000000`, a ping every second) **{wps:.2}/s** for {pps:.2} pings/s, so every wake-up \
         is the watchdog's ({:.1} context switches per ping: the timer, the health check's probes of the \
         journal's two threads, the scan hub and the API loop, and the ping). Goal: only the watchdog's wake-ups — {}.\n",
        ms(check.p50),
        ms(check.max),
        ms(ready.p50),
        ms(ready.max),
        ratio(ready.p50.as_secs_f64(), check.p50.as_secs_f64()),
        verdict(ready.max <= Duration::from_millis(50)),
        ms(to_ready),
        ratio(to_ready.as_secs_f64(), check.p50.as_secs_f64()),
        verdict(to_ready <= Duration::from_millis(500)),
        ms(cut_ready),
        ratio(cut_ready.as_secs_f64(), check.p50.as_secs_f64()),
        verdict(cut_ready <= Duration::from_millis(500)),
        ms(resolved_at),
        wps / pps.max(0.001),
        verdict(quiet <= 0.1),
    );
    r.figure("6. Start to ready; idle wake-ups", &t);
    Ok(())
}

/// Copies the stopped daemon's journal in `from` to `to` with every
/// `unknown` record set back to `sent`: the file a power cut leaves with
/// that many requests in flight.
fn power_cut_copy(from: &Path, to: &Path) -> Result<()> {
    for f in ["journal.db", "journal.db-wal"] {
        if from.join(f).exists() {
            std::fs::copy(from.join(f), to.join(f))?;
        }
    }
    let c = rusqlite::Connection::open(to.join("journal.db"))?;
    let n = c.execute("UPDATE txn SET state = 'sent' WHERE state = 'unknown'", [])?;
    if n == 0 {
        bail!("no unknown record to turn into a sent one");
    }
    Ok(())
}

/// Starts the daemon on the journal in `dir`: the daemon, exec → READY,
/// the unresolved count right after READY, and a client.
fn restart(b: &Bench, dir: &Path) -> Result<(Daemon, Duration, serde_json::Value, Rpc)> {
    let (notify, path) = Notify::bind(dir)?;
    let d = Daemon::spawn(&b.ybposd, dir, &[("NOTIFY_SOCKET", path)])?;
    let at = notify.wait_for("READY=1", Duration::from_secs(60))?;
    let mut c = Rpc::connect(&d.socket)?;
    let unresolved = c.call("system.info", json!({}))?["journal"]["unresolved"].clone();
    let to_ready = at.duration_since(d.spawned);
    Ok((d, to_ready, unresolved, c))
}
