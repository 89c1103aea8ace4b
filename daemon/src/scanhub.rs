//! Where scans meet waiters: scanner status, de-duplication, classification,
//! the `scan` and `scanner` events, and the one-wait-per-scanner rule.
//!
//! Answers in its own terms: [`ScannerStatus`] for `scanner.list`,
//! [`WaitError`] for what can go wrong with a wait; the API renders both.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use regex::Regex;
use scanner_drivers::{Scan, ScannerEvent, ScannerState};
use settlement_client::redact::Masked;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use ybpos_config::{Config, ScannerTransport};

use crate::classify::{Audience, CodeClass, classify};
use crate::events::{Event, EventBus, ScanEvent};

/// Why a wait for a scan did not give a 医保码.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// The config has no `[[scanner]]` at all.
    #[error("no scanner is configured")]
    NoScanner,
    /// No scanner with this id is configured.
    #[error("scanner {0:?} is not configured")]
    NotConfigured(String),
    /// The scanner is not plugged in (or not yet found).
    #[error("scanner {0:?} is not connected")]
    Absent(String),
    /// The scanner is present but unusable.
    #[error("scanner {scanner:?} has an error: {error}")]
    Faulty {
        /// Which scanner.
        scanner: String,
        /// Why (permissions, busy …).
        error: String,
    },
    /// Another wait holds the scanner.
    #[error("another wait holds scanner {0:?}")]
    Busy(String),
    /// The scanner went away while waiting.
    #[error("scanner {0:?} went away during the wait")]
    Gone(String),
    /// Nothing was scanned in time.
    #[error("nothing was scanned within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// A payment code was scanned instead of a 医保码; the hint is for
    /// the audience (a cashier, or the patient at a kiosk).
    #[error("a {} was scanned, not a 医保码", .0.as_str())]
    PaymentCode(CodeClass, Audience),
    /// The client went away.
    #[error("the client went away")]
    Cancelled,
}

/// One configured scanner as `scanner.list` reports it.
#[derive(Debug, Clone)]
pub struct ScannerStatus {
    /// The configured id.
    pub id: String,
    /// How it is attached.
    pub transport: ScannerTransport,
    /// Its device node, once known.
    pub path: Option<PathBuf>,
    /// USB vendor id, once known.
    pub vid: Option<u16>,
    /// USB product id, once known.
    pub pid: Option<u16>,
    /// Connected, absent or in error.
    pub state: ScannerState,
    /// When it last read a code.
    pub last_scan_at: Option<SystemTime>,
    /// Codes read since start (de-duplicated).
    pub scans: u64,
    /// A wait holds it now.
    pub armed: bool,
}

/// What the daemon knows about one configured scanner.
#[derive(Debug, Clone)]
struct Status {
    transport: ScannerTransport,
    path: Option<PathBuf>,
    vid: Option<u16>,
    pid: Option<u16>,
    state: ScannerState,
    last_scan_at: Option<SystemTime>,
    scans: u64,
}

/// A scan with its id and class, as delivered to a waiter.
#[derive(Debug, Clone)]
pub struct Classified {
    /// `scan_id` of the `scan` event.
    pub scan_id: String,
    /// The scan.
    pub scan: Scan,
    /// What it is.
    pub class: CodeClass,
}

#[derive(Debug, Default)]
struct Inner {
    status: BTreeMap<String, Status>,
    waiters: HashMap<String, (u64, mpsc::Sender<Classified>)>,
    recent: HashMap<String, (u64, Instant)>,
    next_scan: u64,
    next_wait: u64,
    /// Configured ids, in config order.
    order: Vec<String>,
}

/// The scan hub.
#[derive(Debug)]
pub struct ScanHub {
    inner: Mutex<Inner>,
    events: EventBus,
    dedupe: Duration,
    pattern: Regex,
}

impl ScanHub {
    /// A hub for the configured scanners; all start `absent`.
    pub fn new(cfg: &Config, events: EventBus) -> Arc<Self> {
        let mut inner = Inner::default();
        inner.set_scanners(&cfg.scanners);
        Arc::new(ScanHub {
            inner: Mutex::new(inner),
            events,
            dedupe: cfg.codes.dedupe_window,
            pattern: cfg.codes.medical_code_pattern.clone(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A reload changed the `[[scanner]]` entries: new ids start `absent`,
    /// removed ids go (a wait on one ends as if it went away), the others
    /// keep their state, counters and wait.
    pub fn set_scanners(&self, scanners: &[ybpos_config::Scanner]) {
        self.lock().set_scanners(scanners);
    }

    /// Applies one event from the scanner back ends.
    pub fn on_event(&self, ev: ScannerEvent) {
        match ev {
            ScannerEvent::State {
                scanner,
                state,
                info,
            } => {
                let mut g = self.lock();
                let Some(st) = g.status.get_mut(&scanner) else {
                    return;
                };
                if info.path.is_some() {
                    st.path = info.path;
                }
                st.vid = info.vid.or(st.vid);
                st.pid = info.pid.or(st.pid);
                if st.state != state {
                    st.state = state.clone();
                    drop(g);
                    info!(scanner = %scanner, state = state.as_str(), "Scanner state changed.");
                    self.events.publish(Event::Scanner { scanner, state });
                }
            }
            ScannerEvent::Scan(scan) => self.on_scan(scan),
        }
    }

    fn on_scan(&self, scan: Scan) {
        // One span per scan: everything logged about it carries the scanner.
        // Debug, as the scan's own line below: at info they cost the `scan`
        // event ~50 µs at p50 (BENCHMARKS.md, figure 1); the scans are
        // counted in the metrics either way.
        let _span = tracing::debug_span!("scan", scanner = %scan.scanner).entered();
        let now = Instant::now();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        scan.text.hash(&mut h);
        let digest = h.finish();
        let class = classify(&scan.text, &self.pattern);
        let mut g = self.lock();
        if let Some((d, at)) = g.recent.get(&scan.scanner)
            && *d == digest
            && now.duration_since(*at) < self.dedupe
        {
            debug!(scanner = %scan.scanner, "Same code again within the de-duplication window; ignored.");
            g.recent.insert(scan.scanner.clone(), (digest, now));
            return;
        }
        g.recent.insert(scan.scanner.clone(), (digest, now));
        g.next_scan += 1;
        let scan_id = format!("s{}", g.next_scan);
        if let Some(st) = g.status.get_mut(&scan.scanner) {
            st.scans += 1;
            st.last_scan_at = Some(scan.at);
        }
        let c = Classified {
            scan_id: scan_id.clone(),
            scan,
            class,
        };
        if let Some((_, tx)) = g.waiters.get(&c.scan.scanner)
            && tx.try_send(c.clone()).is_err()
        {
            warn!(scanner = %c.scan.scanner, "A waiter is not taking scans; scan not delivered.");
        }
        drop(g);
        // Subscribers first: the log line (a write to stderr) and the
        // metrics need not delay the event.
        self.events.publish(Event::Scan(ScanEvent {
            scan_id: scan_id.clone(),
            scanner: c.scan.scanner.clone(),
            at: c.scan.at,
            class,
            symbology: c.scan.symbology,
            text: c.scan.text.clone(),
        }));
        crate::metrics::global()
            .scans
            .inc(&[&c.scan.scanner, class.as_str()]);
        debug!(
            scanner = %c.scan.scanner,
            scan_id = %scan_id,
            class = class.as_str(),
            len = c.scan.text.len(),
            code = %Masked(&c.scan.text),
            "Scan."
        );
    }

    /// `scanner.list`: every configured scanner, in config order.
    pub fn list(&self) -> Vec<ScannerStatus> {
        let g = self.lock();
        g.order
            .iter()
            .filter_map(|id| g.status.get(id).map(|s| (id, s)))
            .map(|(id, s)| ScannerStatus {
                id: id.clone(),
                transport: s.transport,
                path: s.path.clone(),
                vid: s.vid,
                pid: s.pid,
                state: s.state.clone(),
                last_scan_at: s.last_scan_at,
                scans: s.scans,
                armed: g
                    .waiters
                    .get(id.as_str())
                    .is_some_and(|(_, tx)| !tx.is_closed()),
            })
            .collect()
    }

    /// Arms a wait on `scanner` (default: the first configured). One wait per scanner.
    pub fn wait(self: &Arc<Self>, scanner: Option<&str>) -> Result<Waiter, WaitError> {
        let id = match scanner {
            Some(s) => s.to_string(),
            None => self
                .lock()
                .order
                .first()
                .cloned()
                .ok_or(WaitError::NoScanner)?,
        };
        let mut g = self.lock();
        let Some(st) = g.status.get(&id) else {
            return Err(WaitError::NotConfigured(id));
        };
        match &st.state {
            ScannerState::Connected => {}
            ScannerState::Absent => return Err(WaitError::Absent(id)),
            ScannerState::Error(e) => {
                let error = e.clone();
                return Err(WaitError::Faulty { scanner: id, error });
            }
        }
        if let Some((_, tx)) = g.waiters.get(&id)
            && !tx.is_closed()
        {
            return Err(WaitError::Busy(id));
        }
        g.next_wait += 1;
        let wait_id = g.next_wait;
        let (tx, rx) = mpsc::channel(8);
        g.waiters.insert(id.clone(), (wait_id, tx));
        Ok(Waiter {
            hub: Arc::clone(self),
            scanner: id,
            wait_id,
            rx,
        })
    }
}

impl Inner {
    fn set_scanners(&mut self, scanners: &[ybpos_config::Scanner]) {
        self.order = scanners.iter().map(|s| s.id.clone()).collect();
        self.status
            .retain(|id, _| scanners.iter().any(|s| s.id == *id));
        self.waiters
            .retain(|id, _| scanners.iter().any(|s| s.id == *id));
        self.recent
            .retain(|id, _| scanners.iter().any(|s| s.id == *id));
        for s in scanners {
            let st = self.status.entry(s.id.clone()).or_insert_with(|| Status {
                transport: s.transport,
                path: None,
                vid: None,
                pid: None,
                state: ScannerState::Absent,
                last_scan_at: None,
                scans: 0,
            });
            if st.transport != s.transport {
                st.transport = s.transport;
            }
            if st.state != ScannerState::Connected {
                st.path = s.path.clone().or(st.path.take());
                st.vid = s.usb.as_ref().map(|u| u.vid).or(st.vid);
                st.pid = s.usb.as_ref().and_then(|u| u.pid).or(st.pid);
            }
        }
    }
}

/// An armed wait; dropping it frees the scanner.
#[derive(Debug)]
pub struct Waiter {
    hub: Arc<ScanHub>,
    scanner: String,
    wait_id: u64,
    rx: mpsc::Receiver<Classified>,
}

impl Waiter {
    /// The next scan on the scanner.
    pub async fn next(&mut self) -> Option<Classified> {
        self.rx.recv().await
    }

    /// Which scanner is held.
    pub fn scanner(&self) -> &str {
        &self.scanner
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut g = self.hub.lock();
        if g.waiters
            .get(&self.scanner)
            .is_some_and(|(id, _)| *id == self.wait_id)
        {
            g.waiters.remove(&self.scanner);
        }
    }
}
