//! Figure 4: `txn.submit` (2102) → the request on the wire at a null
//! gateway, fsync included: added latency against a direct client posting
//! the same request, settlements/s at 1, 16 and 64 clients, and what the
//! disk's fsync rate allows (a bare fsync loop in the same run).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};
use settlement_client::Outcome;

use crate::identity::direct_gateway;
use crate::kit::{
    Arrivals, NullMode, Pct, Rpc, cpu_time, ms, ms_diff, null_gateway, ratio, verdict,
};
use crate::scan::daemon_with_scanners;
use crate::{Bench, Report};

/// A pharmacy settlement's `input`: one fee line, distinct per `key` (so
/// every submission is its own sale).
pub fn sale_input(key: &str) -> Value {
    json!({
        "druginfo": {"psn_no": "42000000000000000001", "mdtrt_cert_type": "01", "mdtrt_cert_no": "421381ectoken",
                     "medfee_sumamt": "12.30", "insutype": "310", "med_type": "41", "acct_used_flag": "1"},
        "drugdetail": [{"feedetl_sn": key, "med_list_codg": "X01", "det_item_fee_sumamt": "12.30",
                        "cnt": 1, "pric": "12.30"}],
    })
}

/// `txn.submit` params for `key`.
pub fn submit_params(key: &str) -> Value {
    json!({"client_ref": key, "infno": "2102", "insuplc_admdvs": "421381", "input": sale_input(key)})
}

/// A bare fsync loop: append 4 KiB and `fdatasync`, `n` times, in `dir`
/// (the journal's file system). Per-sync latencies.
pub fn fsync_loop(dir: &Path, n: usize) -> Result<Vec<Duration>> {
    let p = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&p)?;
    let block = [0x5au8; 4096];
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        f.write_all(&block)?;
        f.sync_data()?;
        v.push(t0.elapsed());
    }
    drop(f);
    std::fs::remove_file(&p)?;
    Ok(v)
}

/// Settlements/s with `clients` connections for `secs`, each submitting
/// one after the other; (rate, per-request latency).
fn throughput(socket: &Path, clients: usize, secs: f64, tag: &str) -> Result<(f64, Pct)> {
    let start = Instant::now() + Duration::from_millis(100);
    let end = start + Duration::from_secs_f64(secs);
    let threads: Vec<_> = (0..clients)
        .map(|k| {
            let socket = socket.to_path_buf();
            let tag = tag.to_string();
            std::thread::spawn(move || -> Result<(u64, Vec<Duration>)> {
                let mut c = Rpc::connect(&socket)?;
                let mut lat = Vec::new();
                let mut done = 0;
                let now = Instant::now();
                if start > now {
                    std::thread::sleep(start - now);
                }
                let mut i = 0u64;
                while Instant::now() < end {
                    i += 1;
                    let t0 = Instant::now();
                    let v = c.call("txn.submit", submit_params(&format!("{tag}-{k}-{i}")))?;
                    if v["state"] != "succeeded" {
                        bail!("settlement ended {}", v["state"]);
                    }
                    lat.push(t0.elapsed());
                    done += 1;
                }
                Ok((done, lat))
            })
        })
        .collect();
    let mut total = 0;
    let mut lat = Vec::new();
    for t in threads {
        let (n, l) = t.join().map_err(|_| anyhow::anyhow!("client panicked"))??;
        total += n;
        lat.extend(l);
    }
    let took = start.elapsed().as_secs_f64().max(secs);
    Ok((total as f64 / took, Pct::of(&mut lat)))
}

/// Figure 4.
pub fn submit(b: &Bench, r: &mut Report) -> Result<()> {
    let n = if b.short { 50 } else { 1000 };
    let secs = if b.short { 1.0 } else { 10.0 };
    let arrivals = Arc::new(Arrivals::default());
    let url =
        b.rt.block_on(null_gateway(Arc::clone(&arrivals), NullMode::Answer))?;
    let dir = tempfile::tempdir_in(&b.tmp)?;
    let (daemon, _) = daemon_with_scanners(b, dir.path(), &url, 0)?;
    let gw = direct_gateway(&url)?;
    let mut c = Rpc::connect(&daemon.socket)?;

    // Sequential: submit → arrival, interleaved with a direct post of the
    // same request and a bare fsync.
    let (mut via, mut direct, mut fsync) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n + 20 {
        let key = format!("seq-{i}");
        let t0 = Instant::now();
        let v = c.call("txn.submit", submit_params(&key))?;
        let at = arrivals
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if v["state"] != "succeeded" {
            bail!("settlement ended {}", v["state"]);
        }
        let Some(at) = at else {
            bail!("no request arrived")
        };
        let t_via = at.duration_since(t0);
        let input = sale_input(&format!("direct-{i}"));
        let t0 = Instant::now();
        match b.rt.block_on(gw.call("2102", input, "421381")) {
            Outcome::Ok(_) => {}
            o => bail!("direct 2102: {}", o.class()),
        }
        let at = arrivals
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(at) = at else {
            bail!("no request arrived")
        };
        let t_direct = at.duration_since(t0);
        let f = fsync_loop(dir.path(), 1)?;
        if i >= 20 {
            via.push(t_via);
            direct.push(t_direct);
            fsync.extend(f);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let (v, d, f) = (Pct::of(&mut via), Pct::of(&mut direct), Pct::of(&mut fsync));

    // The disk: a bare fsync loop, right before the throughput runs.
    let mut bare = fsync_loop(dir.path(), if b.short { 200 } else { 2000 })?;
    let sum: Duration = bare.iter().sum();
    let fsync_rate = bare.len() as f64 / sum.as_secs_f64();
    let bare = Pct::of(&mut bare);

    let mut rows = String::new();
    let pid = daemon.pid().to_string();
    for clients in [1usize, 16, 64] {
        let (d0, b0) = (cpu_time(&pid)?, cpu_time("self")?);
        let (rate, lat) = throughput(&daemon.socket, clients, secs, &format!("c{clients}"))?;
        let n = (rate * secs).max(1.0);
        let (dc, bc) = (cpu_time(&pid)? - d0, cpu_time("self")? - b0);
        let (dus, bus) = (dc.as_secs_f64() * 1e6 / n, bc.as_secs_f64() * 1e6 / n);
        rows.push_str(&format!(
            "| {clients} | {rate:.0} | {} | {} | {:.0} | {dus:.0} | {bus:.0} | {:.0} | {} |\n",
            ms(lat.p50),
            ms(lat.p99),
            clients as f64 * fsync_rate / 2.0,
            2e6 / (dus + bus).max(1.0),
            if clients == 16 {
                format!("≥ 2,000/s: {}", verdict(rate >= 2000.0))
            } else {
                String::new()
            }
        ));
    }
    let added99 = v.p99.saturating_sub(d.p99);
    let t = format!(
        "A null gateway in the bench process (answers at once; sign-in, 2102 with a settlement) so what is measured \
         is the daemon: request parsing, the idempotency lookup, the record journaled and synced before the post \
         (WAL, `synchronous=FULL`), the envelope, HTTP on loopback; then the answer journaled (synced) before the \
         client gets it. Baseline: a direct client (`settlement_client::Gateway`, in the bench process) posting a \
         2102 to the same null gateway, and one bare `fdatasync` of a 4 KiB append in the journal's folder, \
         interleaved with each submission.\n\n\
         **Sequential** ({n} submissions, one at a time; time from the `txn.submit` line written to the request \
         arriving at the gateway):\n\n\
         | path | p50 ms | p99 ms | max ms |\n|---|---|---|---|\n\
         | `txn.submit` → request at the gateway | {} | {} | {} |\n\
         | direct post of a 2102 (baseline) | {} | {} | {} |\n\
         | one bare fdatasync (4 KiB append) | {} | {} | {} |\n\n\
         | added p50 ms | added p99 ms | ratio p99 | goal | |\n|---|---|---|---|---|\n\
         | {} | {} | {} | ≤ +2 ms p99 | {} |\n\n\
         **The disk**: a bare loop of {} fdatasyncs (4 KiB appends) did **{fsync_rate:.0} syncs/s** (p50 {} ms, p99 \
         {} ms). A settlement is two synced journal commits (the record before the post, the answer after), so \
         one client at a time is bounded by {:.0} settlements/s; concurrent clients share commits (group commit, \
         below), which lifts that bound by the batch size.\n\n\
         **Concurrent clients** (each its own connection, submitting one after the other, {secs} s each; every \
         settlement `succeeded`):\n\n\
         | clients | settlements/s | latency p50 ms | p99 ms | disk bound: clients × syncs/s ÷ 2 | daemon CPU µs per settlement | bench CPU µs (clients + gateway) | CPU bound: 2 cores ÷ (daemon + bench) | goal |\n\
         |---|---|---|---|---|---|---|---|---|\n{rows}\n\
         The disk bound assumes perfect group commit (every client's commit shares a sync); the CPU bound \
         assumes both cores free for the daemon and the bench (they are shared with other work here, see the \
         load average).\n",
        ms(v.p50),
        ms(v.p99),
        ms(v.max),
        ms(d.p50),
        ms(d.p99),
        ms(d.max),
        ms(f.p50),
        ms(f.p99),
        ms(f.max),
        ms_diff(v.p50, d.p50),
        ms_diff(v.p99, d.p99),
        ratio(v.p99.as_secs_f64(), d.p99.as_secs_f64()),
        verdict(added99 <= Duration::from_millis(2)),
        bare.n,
        ms(bare.p50),
        ms(bare.p99),
        fsync_rate / 2.0,
    );
    r.figure(
        "4. `txn.submit` (2102) → request on the wire, fsync included",
        &t,
    );
    drop(c);
    daemon.stop()
}
