//! Figure 5: resident memory idle, with 8 scanners and 64 subscribed
//! clients, and after a million scans (no growth), against a minimal Rust
//! process (the bare relay) in the same run; what the rest is, by mapping.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;

use crate::kit::{
    Arrivals, NullMode, Rpc, null_gateway, ratio, rss_by_mapping, rss_kib, threads, verdict,
};
use crate::scan::{code, daemon_with_scanners, subscribe};
use crate::{Bench, Report};

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// Figure 5.
pub fn memory(b: &Bench, r: &mut Report) -> Result<()> {
    const SCANNERS: usize = 8;
    const CLIENTS: usize = 64;
    let total: u64 = if b.short { 20_000 } else { 1_000_000 };
    let cap = Duration::from_secs(if b.short { 60 } else { 900 });
    let url = b.rt.block_on(null_gateway(
        Arc::new(Arrivals::default()),
        NullMode::Answer,
    ))?;
    let dir = tempfile::tempdir_in(&b.tmp)?;
    let (daemon, ptys) = daemon_with_scanners(b, dir.path(), &url, SCANNERS)?;
    let pid = daemon.pid();

    // Baseline: a minimal Rust process (the bench's bare relay) blocked in read.
    let base_pty = crate::kit::Pty::open()?;
    let sock = dir.path().join("base.sock");
    let l = std::os::unix::net::UnixListener::bind(&sock)?;
    let mut base = std::process::Command::new(std::env::current_exe()?)
        .arg("relay")
        .arg(&base_pty.path)
        .arg(&sock)
        .spawn()
        .context("spawn the baseline relay")?;
    let _conn = l.accept()?;

    std::thread::sleep(Duration::from_millis(1500));
    let idle = rss_kib(pid)?;
    let floor = rss_kib(base.id())?;
    let idle_map = rss_by_mapping(pid)?;
    let idle_threads = threads(pid)?;

    // 64 subscribed clients, each drained by its own thread.
    let stop = Arc::new(AtomicBool::new(false));
    let drained = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for _ in 0..CLIENTS {
        let c = subscribe(&daemon.socket, &["scan"])?;
        let stop = Arc::clone(&stop);
        let drained = Arc::clone(&drained);
        readers.push(std::thread::spawn(move || {
            let mut s = c.into_stream();
            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
            let mut buf = vec![0u8; 64 * 1024];
            while !stop.load(Ordering::Relaxed) {
                if let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    drained.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let loaded = rss_kib(pid)?;

    // A million scans, as fast as the ptys take them, RSS sampled on the way.
    let per = total / SCANNERS as u64;
    let written = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let writers: Vec<_> = ptys
        .into_iter()
        .enumerate()
        .map(|(s, mut pty)| {
            let written = Arc::clone(&written);
            std::thread::spawn(move || -> Result<()> {
                for i in 0..per {
                    if t0.elapsed() > cap {
                        break;
                    }
                    pty.write(format!("{}\r", code(&format!("M{s}-"), i)).as_bytes())?;
                    written.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_secs(2));
                Ok(())
            })
        })
        .collect();
    let mut samples = Vec::new();
    let mut ctl = Rpc::connect(&daemon.socket)?;
    let mut counted = 0u64;
    let mut next_sample = 0u64;
    while t0.elapsed() < cap + Duration::from_secs(30) {
        let v = ctl.call("scanner.list", json!({}))?;
        counted = v
            .as_array()
            .map(|a| a.iter().filter_map(|s| s["scans"].as_u64()).sum())
            .unwrap_or(0);
        if counted >= next_sample {
            samples.push((counted, rss_kib(pid)?.0));
            next_sample += total / 10;
        }
        if counted >= total
            || (writers.iter().all(|w| w.is_finished())
                && counted >= written.load(Ordering::Relaxed))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = t0.elapsed();
    for w in writers {
        w.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
    }
    std::thread::sleep(Duration::from_millis(1500));
    let after = rss_kib(pid)?;
    let after_map = rss_by_mapping(pid)?;
    stop.store(true, Ordering::Relaxed);
    for t in readers {
        let _ = t.join();
    }
    let _ = base.kill();
    let _ = base.wait();
    let growth: Vec<String> = samples
        .iter()
        .map(|(n, k)| format!("{n}: {} MiB", mib(*k)))
        .collect();
    let mut t = format!(
        "`VmRSS` of the daemon (default `RUST_LOG`, one journal, 8 pty scanners, a null gateway), read from \
         `/proc`. Baseline: a minimal Rust process (the bench's bare relay: std only, blocked in `read`) in the \
         same run: {} MiB.\n\n\
         | state | RSS MiB | anonymous MiB | file-backed MiB | vs the minimal process | goal | |\n|---|---|---|---|---|---|---|\n\
         | idle, 8 scanners connected | {} | {} | {} | {} | ≤ 8 MiB | {} |\n\
         | + {CLIENTS} clients subscribed to `scan` | {} | {} | {} | {} | ≤ 10 MiB | {} |\n\
         | after {counted} scans ({:.0} scans/s, every one sent to the {CLIENTS} subscribers) | {} | {} | {} | {} | ≤ 10 MiB, no growth | {} |\n\n\
         RSS on the way (scans counted: RSS): {}.\n\n\
         Idle threads: {}.\n\n\
         Where the idle RSS is (KiB by mapping, from `/proc/PID/smaps`):\n\n| mapping | idle KiB | after the scans KiB |\n|---|---|---|\n",
        mib(floor.0),
        mib(idle.0),
        mib(idle.1),
        mib(idle.2),
        ratio(idle.0 as f64, floor.0 as f64),
        verdict(idle.0 <= 8 * 1024),
        mib(loaded.0),
        mib(loaded.1),
        mib(loaded.2),
        ratio(loaded.0 as f64, floor.0 as f64),
        verdict(loaded.0 <= 10 * 1024),
        counted as f64 / took.as_secs_f64(),
        mib(after.0),
        mib(after.1),
        mib(after.2),
        ratio(after.0 as f64, floor.0 as f64),
        verdict(after.0 <= 10 * 1024 && after.0 <= loaded.0 + 1024),
        growth.join(", "),
        idle_threads.join(", "),
    );
    for (name, kib) in idle_map.iter().take(12) {
        let a = after_map
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, k)| *k);
        t.push_str(&format!("| {name} | {kib} | {a} |\n"));
    }
    let _ = drained.load(Ordering::Relaxed);
    r.figure("5. Memory", &t);
    daemon.stop()
}
