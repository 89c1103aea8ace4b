//! Metrics: counters and gauges with labels, served as Prometheus text on
//! `GET /metrics` (local-api.md, Transports 2).
//!
//! A small hand-written registry rather than a crate, because
//! - the daemon needs three things only: labelled counters, labelled gauges,
//!   and gauges read at scrape time (hooks), rendered in the text format
//!   (version 0.0.4), which is a few lines of escaping;
//! - label values can come from clients (method names) and config (scanner
//!   ids), and no input may grow memory without bound: every family caps its
//!   series at [`MAX_SERIES`] and counts the rest under `"_other"`, a guard
//!   `prometheus-client`'s `Family` does not have;
//! - it adds no dependency (no derive macros, no `parking_lot`).
//!
//! Cost: an update is one uncontended mutex and a scan of the family's few
//! series (no allocation once a series exists). The daemon uses one
//! process-wide instance, [`global()`], in the style of Firecracker's
//! `METRICS`, so any module can count without plumbing; tests build their
//! own [`Metrics`].

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};

use tracing::warn;

/// Most label combinations one family keeps; more are counted under `"_other"`.
pub const MAX_SERIES: usize = 256;

/// The label value that absorbs series past [`MAX_SERIES`].
pub const OVERFLOW: &str = "_other";

/// Name, help and label names of one family.
#[derive(Debug)]
struct Meta {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    full_warned: AtomicBool,
}

impl Meta {
    const fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Meta {
            name,
            help,
            labels,
            full_warned: AtomicBool::new(false),
        }
    }

    fn header(&self, out: &mut String, kind: &str) {
        let help = self.help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(out, "# HELP {} {help}", self.name);
        let _ = writeln!(out, "# TYPE {} {kind}", self.name);
    }
}

/// Label values of one series, in label-name order.
type Key = Box<[Box<str>]>;

/// The series of one family: label values → value.
#[derive(Debug)]
struct Series<V> {
    rows: Mutex<Vec<(Key, V)>>,
}

impl<V: Copy + Default> Series<V> {
    fn new() -> Self {
        Series {
            rows: Mutex::new(Vec::new()),
        }
    }

    /// Applies `f` to the value of `labels`, creating it (or the overflow row).
    fn update(&self, meta: &Meta, labels: &[&str], f: impl FnOnce(&mut V)) {
        debug_assert_eq!(
            labels.len(),
            meta.labels.len(),
            "metric {} takes labels {:?}",
            meta.name,
            meta.labels
        );
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(row) = rows.iter_mut().find(|(k, _)| same(k, labels)) {
            f(&mut row.1);
            return;
        }
        let key: Key = if rows.len() < MAX_SERIES && labels.len() == meta.labels.len() {
            labels.iter().map(|l| Box::from(*l)).collect()
        } else {
            if !meta.full_warned.swap(true, Ordering::Relaxed) {
                warn!(
                    metric = meta.name,
                    max = MAX_SERIES,
                    "Too many label combinations; the rest are counted under \"_other\"."
                );
            }
            let other = vec![OVERFLOW; meta.labels.len()];
            if let Some(row) = rows.iter_mut().find(|(k, _)| same(k, &other)) {
                f(&mut row.1);
                return;
            }
            other.iter().map(|l| Box::from(*l)).collect()
        };
        let mut v = V::default();
        f(&mut v);
        rows.push((key, v));
    }

    fn get(&self, labels: &[&str]) -> Option<V> {
        let rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        rows.iter().find(|(k, _)| same(k, labels)).map(|(_, v)| *v)
    }

    fn snapshot(&self) -> Vec<(Key, V)> {
        let mut rows = self
            .rows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect::<Vec<_>>();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }
}

fn same(key: &[Box<str>], labels: &[&str]) -> bool {
    key.len() == labels.len() && key.iter().zip(labels).all(|(a, b)| **a == **b)
}

/// Writes one sample line.
fn sample(out: &mut String, name: &str, names: &[&str], values: &[impl AsRef<str>], v: i128) {
    out.push_str(name);
    if !names.is_empty() {
        out.push('{');
        for (i, (n, v)) in names.iter().zip(values).enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(n);
            out.push_str("=\"");
            for c in v.as_ref().chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {v}");
}

/// A counter family: values only go up.
#[derive(Debug)]
pub struct Counter {
    meta: Meta,
    series: Series<u64>,
}

impl Counter {
    /// A family named `name` (ending in `_total`) with these label names.
    pub fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Counter {
            meta: Meta::new(name, help, labels),
            series: Series::new(),
        }
    }

    /// Adds one to the series `labels` (values in the order of the label names).
    pub fn inc(&self, labels: &[&str]) {
        self.add(labels, 1);
    }

    /// Adds `n`.
    pub fn add(&self, labels: &[&str], n: u64) {
        self.series
            .update(&self.meta, labels, |v| *v = v.saturating_add(n));
    }

    /// The current value (0 when never counted).
    pub fn get(&self, labels: &[&str]) -> u64 {
        self.series.get(labels).unwrap_or(0)
    }

    fn render(&self, out: &mut String) {
        self.meta.header(out, "counter");
        for (k, v) in self.series.snapshot() {
            sample(out, self.meta.name, self.meta.labels, &k, v.into());
        }
    }
}

/// A gauge family: values set or moved by the code that knows them.
#[derive(Debug)]
pub struct Gauge {
    meta: Meta,
    series: Series<i64>,
}

impl Gauge {
    /// A family named `name` with these label names.
    pub fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Gauge {
            meta: Meta::new(name, help, labels),
            series: Series::new(),
        }
    }

    /// Sets the series `labels` to `v`.
    pub fn set(&self, labels: &[&str], v: i64) {
        self.series.update(&self.meta, labels, |x| *x = v);
    }

    /// Adds `d` (negative to subtract).
    pub fn add(&self, labels: &[&str], d: i64) {
        self.series
            .update(&self.meta, labels, |x| *x = x.saturating_add(d));
    }

    /// The current value (0 when never set).
    pub fn get(&self, labels: &[&str]) -> i64 {
        self.series.get(labels).unwrap_or(0)
    }

    fn render(&self, out: &mut String) {
        self.meta.header(out, "gauge");
        for (k, v) in self.series.snapshot() {
            sample(out, self.meta.name, self.meta.labels, &k, v.into());
        }
    }
}

/// Upper bounds (seconds) of the latency buckets: from a fast LAN answer to
/// past a 30 s `request_timeout_ms`.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// The counts of one histogram series (per bucket, not cumulative).
#[derive(Debug, Clone, Copy, Default)]
struct Buckets {
    counts: [u64; LATENCY_BUCKETS.len() + 1],
    sum_micros: u64,
}

/// A histogram family of durations, in seconds, with [`LATENCY_BUCKETS`].
#[derive(Debug)]
pub struct Histogram {
    meta: Meta,
    series: Series<Buckets>,
}

impl Histogram {
    /// A family named `name` (ending in `_seconds`) with these label names.
    pub fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Histogram {
            meta: Meta::new(name, help, labels),
            series: Series::new(),
        }
    }

    /// Records one duration in the series `labels`.
    pub fn observe(&self, labels: &[&str], d: std::time::Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.series.update(&self.meta, labels, |v| {
            v.counts[i] += 1;
            v.sum_micros = v.sum_micros.saturating_add(micros);
        });
    }

    /// Observations in the series `labels` so far.
    pub fn count(&self, labels: &[&str]) -> u64 {
        self.series.get(labels).map_or(0, |b| b.counts.iter().sum())
    }

    fn render(&self, out: &mut String) {
        self.meta.header(out, "histogram");
        let bucket = format!("{}_bucket", self.meta.name);
        let mut names: Vec<&str> = self.meta.labels.to_vec();
        names.push("le");
        for (k, v) in self.series.snapshot() {
            let mut values: Vec<String> = k.iter().map(|s| s.to_string()).collect();
            values.push(String::new());
            let mut cumulative = 0u64;
            for (i, n) in v.counts.iter().enumerate() {
                cumulative += n;
                let le = values.last_mut().expect("le");
                *le = match LATENCY_BUCKETS.get(i) {
                    Some(b) => format!("{b}"),
                    None => "+Inf".into(),
                };
                sample(out, &bucket, &names, &values, cumulative.into());
            }
            let labels = &values[..values.len() - 1];
            let sum = format!("{}_sum", self.meta.name);
            let count = format!("{}_count", self.meta.name);
            sample_f64(
                out,
                &sum,
                self.meta.labels,
                labels,
                v.sum_micros as f64 / 1e6,
            );
            sample(out, &count, self.meta.labels, labels, cumulative.into());
        }
    }
}

/// Writes one sample line with a fractional value.
fn sample_f64(out: &mut String, name: &str, names: &[&str], values: &[impl AsRef<str>], v: f64) {
    let mut line = String::new();
    sample(&mut line, name, names, values, 0);
    // `sample` wrote "… 0\n": put the real value in its place.
    line.truncate(line.len() - 2);
    let _ = writeln!(out, "{line}{v}");
}

/// One sample a hook returns: label values (in label-name order) and the value.
pub type Sample = (Vec<String>, i64);

type Source = Box<dyn Fn() -> Vec<Sample> + Send + Sync>;

/// A gauge read at scrape time from whoever owns the number (e.g. the
/// journal's `unresolved` count). Absent from the output until a source is set.
pub struct GaugeHook {
    meta: Meta,
    source: Mutex<Option<Source>>,
}

impl std::fmt::Debug for GaugeHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GaugeHook")
            .field("name", &self.meta.name)
            .finish_non_exhaustive()
    }
}

impl GaugeHook {
    /// A hook family named `name` with these label names.
    pub fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        GaugeHook {
            meta: Meta::new(name, help, labels),
            source: Mutex::new(None),
        }
    }

    /// Sets where the samples come from. Called on every scrape, off the
    /// async runtime (it may read a file or a database), so keep it quick.
    pub fn set_source(&self, f: impl Fn() -> Vec<Sample> + Send + Sync + 'static) {
        *self.source.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(f));
    }

    /// [`set_source`](Self::set_source) for a family without labels; `None` omits the sample.
    pub fn set_value_source(&self, f: impl Fn() -> Option<i64> + Send + Sync + 'static) {
        self.set_source(move || f().map(|v| (Vec::new(), v)).into_iter().collect());
    }

    /// The samples now (empty without a source).
    pub fn read(&self) -> Vec<Sample> {
        let g = self.source.lock().unwrap_or_else(|e| e.into_inner());
        let mut rows = g.as_ref().map(|f| f()).unwrap_or_default();
        rows.retain(|(k, _)| k.len() == self.meta.labels.len());
        rows.truncate(MAX_SERIES);
        rows.sort();
        rows
    }

    fn render(&self, out: &mut String) {
        let rows = self.read();
        if rows.is_empty() {
            return;
        }
        self.meta.header(out, "gauge");
        for (k, v) in rows {
            sample(out, self.meta.name, self.meta.labels, &k, v.into());
        }
    }
}

/// The daemon's metrics. Names are fixed: dashboards and alerts use them.
#[derive(Debug)]
pub struct Metrics {
    /// Scans read, by scanner and class (after de-duplication).
    pub scans: Counter,
    /// API requests, by method (`unknown` for no such method, `invalid` for
    /// unparsable messages) and outcome (`ok` or the error's `data.kind`).
    pub api_requests: Counter,
    /// API connections accepted, by transport (`unix`, `http`, `ws`).
    pub api_connections: Counter,
    /// API connections open now, by transport.
    pub api_connections_open: Gauge,
    /// Connections or requests refused before any method ran, by transport
    /// and reason (`host`, `origin`, `token`, `overloaded`, `too_large`, `uid`).
    pub api_refused: Counter,
    /// Gateway calls, by infno and outcome class (`ok`, `rejected`,
    /// `not_sent`, `unknown`).
    pub gateway_calls: Counter,
    /// 1 while the gateway link is signed in, 0 otherwise (set at scrape).
    pub gateway_online: Gauge,
    /// 1 for a connected scanner, 0 otherwise, by scanner (set at scrape).
    pub scanner_connected: Gauge,
    /// Journal transactions whose outcome is not yet final. The journal sets
    /// the source, e.g. `metrics::global().journal_unresolved
    /// .set_value_source(move || journal.count_unresolved().ok())`.
    pub journal_unresolved: GaugeHook,
    /// Journal transactions in `reversal_failed`: they need a person.
    pub journal_reversal_failed: GaugeHook,
    /// Journal transactions unresolved for longer than 10 minutes.
    pub journal_stale: GaugeHook,
    /// Transaction state changes, by infno and new state.
    pub txn_states: Counter,
    /// Requests the gateway refused as a duplicate msgid (another terminal
    /// of the institution uses the same msgids: a config error).
    pub msgid_collisions: Counter,
    /// Resident memory of the daemon, from `/proc/self/status`.
    pub resident_memory: GaugeHook,
    /// Open file descriptors of the daemon, from `/proc/self/fd`.
    pub open_fds: GaugeHook,
    /// Always 1; carries the version as a label.
    pub build_info: Gauge,
    /// Gateway call latency, by infno (1162 decode, 1101, each settlement
    /// infno, 2601 …), whatever the outcome.
    pub gateway_latency: Histogram,
    /// Config reloads (SIGHUP), by result (`applied`, `refused`).
    pub config_reloads: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of families (the daemon uses [`global()`]).
    pub fn new() -> Self {
        let m = Metrics {
            scans: Counter::new(
                "ybpos_scans_total",
                "Scans read, by scanner and class (after de-duplication).",
                &["scanner", "class"],
            ),
            api_requests: Counter::new(
                "ybpos_api_requests_total",
                "Local API requests, by method and outcome (ok or the error kind).",
                &["method", "outcome"],
            ),
            api_connections: Counter::new(
                "ybpos_api_connections_total",
                "Local API connections accepted, by transport.",
                &["transport"],
            ),
            api_connections_open: Gauge::new(
                "ybpos_api_connections_open",
                "Local API connections open now, by transport.",
                &["transport"],
            ),
            api_refused: Counter::new(
                "ybpos_api_refused_total",
                "Local API connections or requests refused before any method ran, by transport and reason.",
                &["transport", "reason"],
            ),
            gateway_calls: Counter::new(
                "ybpos_gateway_calls_total",
                "Calls to the settlement gateway, by infno and outcome class.",
                &["infno", "outcome"],
            ),
            gateway_online: Gauge::new(
                "ybpos_gateway_online",
                "1 while signed in at the gateway, 0 otherwise.",
                &[],
            ),
            scanner_connected: Gauge::new(
                "ybpos_scanner_connected",
                "1 for a connected scanner, 0 when absent or in error.",
                &["scanner"],
            ),
            journal_unresolved: GaugeHook::new(
                "ybpos_journal_unresolved",
                "Journal transactions whose outcome is not final yet.",
                &[],
            ),
            journal_reversal_failed: GaugeHook::new(
                "ybpos_journal_reversal_failed",
                "Journal transactions whose reversal failed: they need a person.",
                &[],
            ),
            journal_stale: GaugeHook::new(
                "ybpos_journal_stale",
                "Journal transactions unresolved for longer than 10 minutes.",
                &[],
            ),
            txn_states: Counter::new(
                "ybpos_txn_state_changes_total",
                "Transaction state changes, by infno and new state.",
                &["infno", "state"],
            ),
            msgid_collisions: Counter::new(
                "ybpos_msgid_collisions_total",
                "Requests refused by the gateway as a duplicate msgid (terminals sharing an institution code need msgid_node).",
                &[],
            ),
            resident_memory: GaugeHook::new(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                &[],
            ),
            open_fds: GaugeHook::new("process_open_fds", "Number of open file descriptors.", &[]),
            build_info: Gauge::new(
                "ybpos_build_info",
                "Always 1; the version is a label.",
                &["version"],
            ),
            gateway_latency: Histogram::new(
                "ybpos_gateway_call_duration_seconds",
                "Gateway call latency in seconds, by infno (1162 decode, 1101, settlements, reversals).",
                &["infno"],
            ),
            config_reloads: Counter::new(
                "ybpos_config_reloads_total",
                "Config reloads (SIGHUP), by result: applied or refused.",
                &["result"],
            ),
        };
        m.build_info.set(&[env!("CARGO_PKG_VERSION")], 1);
        m.resident_memory.set_value_source(resident_bytes);
        m.open_fds.set_value_source(|| {
            std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|d| d.count() as i64)
        });
        m
    }

    /// Everything, in the Prometheus text format 0.0.4. Calls the hooks:
    /// run it off the async runtime (`spawn_blocking`).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        self.scans.render(&mut out);
        self.api_requests.render(&mut out);
        self.api_connections.render(&mut out);
        self.api_connections_open.render(&mut out);
        self.api_refused.render(&mut out);
        self.gateway_calls.render(&mut out);
        self.gateway_online.render(&mut out);
        self.scanner_connected.render(&mut out);
        self.journal_unresolved.render(&mut out);
        self.journal_reversal_failed.render(&mut out);
        self.journal_stale.render(&mut out);
        self.txn_states.render(&mut out);
        self.msgid_collisions.render(&mut out);
        self.resident_memory.render(&mut out);
        self.open_fds.render(&mut out);
        self.build_info.render(&mut out);
        self.gateway_latency.render(&mut out);
        self.config_reloads.render(&mut out);
        out
    }
}

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn resident_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The daemon's metrics (one per process).
pub fn global() -> &'static Metrics {
    &METRICS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_gauges_render_in_text_format() {
        let m = Metrics::new();
        m.scans.inc(&["counter", "medical_code"]);
        m.scans.inc(&["counter", "medical_code"]);
        m.scans.inc(&["a\"b\\c\nd", "other"]);
        m.api_connections_open.add(&["ws"], 2);
        m.api_connections_open.add(&["ws"], -1);
        m.gateway_online.set(&[], 1);
        let t = m.render();
        assert!(t.contains("# TYPE ybpos_scans_total counter\n"));
        assert!(t.contains("ybpos_scans_total{scanner=\"counter\",class=\"medical_code\"} 2\n"));
        assert!(t.contains(r#"ybpos_scans_total{scanner="a\"b\\c\nd",class="other"} 1"#));
        assert!(t.contains("ybpos_api_connections_open{transport=\"ws\"} 1\n"));
        assert!(t.contains("ybpos_gateway_online 1\n"));
        assert!(t.contains(&format!(
            "ybpos_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
        // Hooks without a source are absent; with one, present.
        assert!(!t.contains("ybpos_journal_unresolved"));
        m.journal_unresolved.set_value_source(|| Some(3));
        assert!(
            m.render()
                .contains("# TYPE ybpos_journal_unresolved gauge\nybpos_journal_unresolved 3\n")
        );
        assert!(t.ends_with('\n'));
        assert_eq!(m.scans.get(&["counter", "medical_code"]), 2);
        assert_eq!(m.scans.get(&["nope", "x"]), 0);
    }

    #[test]
    fn histograms_render_cumulative_buckets_sum_and_count() {
        let m = Metrics::new();
        let ms = std::time::Duration::from_millis;
        m.gateway_latency.observe(&["1101"], ms(3));
        m.gateway_latency.observe(&["1101"], ms(40));
        m.gateway_latency.observe(&["1101"], ms(200_000));
        let t = m.render();
        assert!(t.contains("# TYPE ybpos_gateway_call_duration_seconds histogram\n"));
        assert!(t.contains(
            "ybpos_gateway_call_duration_seconds_bucket{infno=\"1101\",le=\"0.005\"} 1\n"
        ));
        assert!(t.contains(
            "ybpos_gateway_call_duration_seconds_bucket{infno=\"1101\",le=\"0.05\"} 2\n"
        ));
        assert!(
            t.contains("ybpos_gateway_call_duration_seconds_bucket{infno=\"1101\",le=\"120\"} 2\n")
        );
        assert!(t.contains(
            "ybpos_gateway_call_duration_seconds_bucket{infno=\"1101\",le=\"+Inf\"} 3\n"
        ));
        assert!(
            t.contains("ybpos_gateway_call_duration_seconds_sum{infno=\"1101\"} 200.043\n"),
            "{t}"
        );
        assert!(t.contains("ybpos_gateway_call_duration_seconds_count{infno=\"1101\"} 3\n"));
        assert_eq!(m.gateway_latency.count(&["1101"]), 3);
    }

    #[test]
    fn process_hooks_read_proc() {
        let m = Metrics::new();
        let t = m.render();
        assert!(m.resident_memory.read()[0].1 > 0, "{t}");
        assert!(m.open_fds.read()[0].1 > 0);
    }

    #[test]
    fn series_are_capped() {
        let c = Counter::new("x_total", "x", &["k"]);
        for i in 0..(MAX_SERIES + 50) {
            c.inc(&[&format!("v{i}")]);
        }
        assert_eq!(c.series.snapshot().len(), MAX_SERIES + 1);
        assert_eq!(c.get(&[OVERFLOW]), 50);
        // Existing series still count normally.
        c.inc(&["v0"]);
        assert_eq!(c.get(&["v0"]), 2);
    }

    #[test]
    fn names_are_valid_prometheus_names() {
        let m = Metrics::new();
        m.journal_unresolved.set_value_source(|| Some(0));
        m.journal_reversal_failed.set_value_source(|| Some(0));
        for line in m.render().lines().filter(|l| l.starts_with("# TYPE ")) {
            let name = line.split(' ').nth(2).unwrap();
            assert!(
                name.chars().enumerate().all(|(i, c)| c == '_'
                    || c == ':'
                    || c.is_ascii_alphabetic()
                    || (i > 0 && c.is_ascii_digit())),
                "{name}"
            );
        }
    }
}
