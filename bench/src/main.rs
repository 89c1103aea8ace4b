//! `ybpos-bench`: the benchmark suite. Drives a release `ybposd` from
//! outside — pty scanners, clients on its socket, a null gateway or the
//! simulator — and measures every figure against a bare baseline in the same
//! run, then writes `BENCHMARKS.md`. `bench/run.sh` builds and runs it.
//!
//! ```text
//! ybpos-bench --ybposd target/release/ybposd [--short] [--out BENCHMARKS.md] [--only 1,4]
//! ybpos-bench relay PTY SOCKET      # the bare relay baseline (figure 1)
//! ```
//!
//! Modules: [`kit`] (ptys, the daemon child, a blocking client, the null
//! gateway, `/proc` readings), one per figure: [`scan`] (1, 2),
//! [`identity`] (3), [`txn`] (4), [`memory`] (5), [`start`] (6).

mod identity;
mod kit;
mod memory;
mod scan;
mod start;
mod txn;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// What every figure needs.
#[derive(Debug)]
pub struct Bench {
    /// The daemon binary under test.
    pub ybposd: PathBuf,
    /// Short mode (CI: proves the suite works; the figures mean little).
    pub short: bool,
    /// Where temporary folders go (the journal's file system).
    pub tmp: PathBuf,
    /// For the gateway stand-ins and the direct clients.
    pub rt: tokio::runtime::Runtime,
}

/// The markdown being written.
#[derive(Debug, Default)]
pub struct Report {
    figures: Vec<(String, String)>,
}

impl Report {
    /// Adds a figure's section.
    pub fn figure(&mut self, title: &str, body: &str) {
        eprintln!("== {title}\n{body}");
        self.figures.push((title.to_string(), body.to_string()));
    }
}

fn read(p: &str) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn cmd_out(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The file system `p` is on, from `/proc/mounts` (longest matching mount point).
fn filesystem_of(p: &Path) -> String {
    let p = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let mut best = (0, String::new());
    for l in read("/proc/mounts").lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() > 3 && p.starts_with(f[1]) && f[1].len() >= best.0 {
            best = (f[1].len(), format!("{} on {} ({})", f[0], f[1], f[2]));
        }
    }
    best.1
}

fn loadavg() -> String {
    read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn machine(b: &Bench, load_before: &str) -> String {
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_string();
    let mem = read("/proc/meminfo")
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .nth(1)
        .and_then(|k| k.parse::<u64>().ok())
        .map_or("?".into(), |k| format!("{:.1} GiB", k as f64 / 1048576.0));
    let size = std::fs::metadata(&b.ybposd).map_or(0, |m| m.len());
    format!(
        "- CPU: {cpu}, {} cores online; memory {mem}; kernel {}\n\
         - Journal and temporary files: {}\n\
         - Load average (1, 5, 15 min) at the start: {load_before}; at the end: {} — the machine is shared, so \
           every figure is measured against its baseline in the same run, interleaved where the figure allows.\n\
         - `ybposd`: {} ({:.1} MB), commit {}; {}\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        read("/proc/sys/kernel/osrelease").trim(),
        filesystem_of(&b.tmp),
        loadavg(),
        b.ybposd.display(),
        size as f64 / 1e6,
        cmd_out("git", &["rev-parse", "--short", "HEAD"]),
        cmd_out("rustc", &["-V"]),
    )
}

fn usage() -> ! {
    eprintln!(
        "usage: ybpos-bench --ybposd PATH [--short] [--out FILE] [--only 1,2,…] [--tmp DIR]\n       ybpos-bench relay PTY SOCKET"
    );
    std::process::exit(2)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("relay") {
        let (Some(pty), Some(sock)) = (args.get(1), args.get(2)) else {
            usage()
        };
        return scan::relay(Path::new(pty), Path::new(sock));
    }
    let mut ybposd = None;
    let mut short = false;
    let mut out = None;
    let mut only: Option<Vec<u32>> = None;
    let mut tmp = std::env::temp_dir();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--ybposd" => ybposd = it.next().map(PathBuf::from),
            "--short" => short = true,
            "--out" => out = it.next().map(PathBuf::from),
            "--tmp" => tmp = it.next().map(PathBuf::from).unwrap_or_else(|| usage()),
            "--only" => {
                let list = it.next().unwrap_or_else(|| usage());
                let mut figures = Vec::new();
                for f in list.split(',') {
                    match f.trim().parse::<u32>() {
                        Ok(n @ 1..=6) => figures.push(n),
                        _ => bail!("--only {list}: figures are 1 to 6, comma-separated"),
                    }
                }
                only = Some(figures);
            }
            _ => usage(),
        }
    }
    let Some(ybposd) = ybposd else { usage() };
    if !ybposd.is_file() {
        bail!("{} is not a file", ybposd.display());
    }
    let b = Bench {
        ybposd: ybposd.canonicalize()?,
        short,
        tmp,
        rt: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?,
    };
    let load_before = loadavg();
    let started = Instant::now();
    let mut r = Report::default();
    let want = |n: u32| only.as_ref().is_none_or(|o| o.contains(&n));
    // The gateway stand-in the scan figures' daemons sign in to.
    let null = b.rt.block_on(kit::null_gateway(
        std::sync::Arc::new(kit::Arrivals::default()),
        kit::NullMode::Answer,
    ))?;
    type Figure<'a> = (u32, Box<dyn Fn(&Bench, &mut Report) -> Result<()> + 'a>);
    let figures: Vec<Figure> = vec![
        (1, Box::new(|b, r| scan::scan_latency(b, r, &null))),
        (2, Box::new(|b, r| scan::burst(b, r, &null))),
        (3, Box::new(identity::identity)),
        (4, Box::new(txn::submit)),
        (5, Box::new(memory::memory)),
        (6, Box::new(start::start)),
    ];
    for (n, f) in &figures {
        if want(*n) {
            let t = Instant::now();
            f(&b, &mut r).with_context(|| format!("figure {n}"))?;
            eprintln!("(figure {n} took {:.1} s)", t.elapsed().as_secs_f64());
        }
    }
    let mut md = format!(
        "# Benchmarks\n\n\
         Written by `bench/run.sh{}` ({} mode, {:.0} s). Each figure is measured from outside the daemon — pty \
         scanners, clients on its Unix socket, a gateway stand-in — against a bare baseline in the same run, \
         and gives the ratio and the goal (issue 13). What bounds the figures that miss a goal, and what was \
         changed to reach the others, is in \"Analysis\" below the figures.\n\n\
         ## Machine\n\n{}\n\
         ## Reproduce\n\n```sh\nbench/run.sh            # full run: about 6 minutes of figures; writes BENCHMARKS.md\n\
         bench/run.sh --short    # what CI runs: about 1.5 minutes of figures, proves the suite works\n\
         bench/run.sh --only 4   # one figure (1–6)\n```\n\n",
        if short { " --short" } else { "" },
        if short { "short" } else { "full" },
        started.elapsed().as_secs_f64(),
        machine(&b, &load_before),
    );
    for (title, body) in &r.figures {
        md.push_str(&format!("## {title}\n\n{body}\n"));
    }
    if let Some(out) = out {
        // Keep the hand-written analysis that follows the generated part.
        let keep = std::fs::read_to_string(&out)
            .ok()
            .and_then(|old| old.find(ANALYSIS).map(|i| old[i..].to_string()))
            .unwrap_or_else(|| format!("{ANALYSIS}\n\n(not written yet)\n"));
        md.push_str(&keep);
        std::fs::write(&out, md)?;
        eprintln!("wrote {}", out.display());
    } else {
        print!("{md}");
    }
    Ok(())
}

/// The heading of the hand-written part of `BENCHMARKS.md`, kept across runs.
const ANALYSIS: &str = "## Analysis";
