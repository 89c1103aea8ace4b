//! Starts one back end per configured scanner and the hotplug source they
//! share; arms scanners for a `scan.wait`; stops them together.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use ybpos_config::{Scanner, ScannerTransport};

use crate::backend::{BackendCtx, Control};
use crate::common::Claims;
use crate::hotplug::Hotplug;
use crate::scan::ScannerEvent;

/// The running scanner back ends. Cheap to clone: clones share the back ends.
#[derive(Debug, Clone)]
pub struct Drivers {
    tracker: TaskTracker,
    cancel: CancellationToken,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Every entry now (the back ends' `peers`).
    peers: Arc<[Scanner]>,
    events: mpsc::Sender<ScannerEvent>,
    hotplug: Hotplug,
    /// False while the hotplug source is a manual one because no scanner
    /// was configured at start; opened when a reload adds the first.
    hotplug_open: bool,
    claims: Claims,
}

#[derive(Debug)]
struct Entry {
    cfg: Scanner,
    tx: mpsc::Sender<Control>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// What [`Drivers::reconfigure`] changed, by scanner id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconfigured {
    /// New entries, started.
    pub added: Vec<String>,
    /// Entries gone from the config, stopped (their devices given back).
    pub removed: Vec<String>,
    /// Entries whose settings changed, stopped and started again.
    pub restarted: Vec<String>,
}

impl Reconfigured {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.restarted.is_empty()
    }
}

/// How long a stopping back end may take to give its device back.
const STOP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Why [`Drivers::arm`] did nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArmError {
    /// No `[[scanner]]` entry has this id.
    #[error("no scanner {0:?}")]
    UnknownScanner(String),
    /// The entry has neither `trigger_on_wait` nor `beep_on_wait`.
    #[error("scanner {0:?} is not configured to be triggered")]
    NotConfigured(String),
    /// The back end has not taken the previous request yet, or has stopped.
    #[error("scanner {0:?} cannot take a request now")]
    Busy(String),
}

impl Drivers {
    /// Starts a back end for every scanner; events go to `tx`.
    ///
    /// Must be called inside a tokio runtime. Stops when `cancel` fires.
    pub fn start(
        scanners: &[Scanner],
        tx: mpsc::Sender<ScannerEvent>,
        cancel: CancellationToken,
    ) -> Drivers {
        let tracker = TaskTracker::new();
        let (hotplug, open) = if scanners.is_empty() {
            (Hotplug::manual(), false)
        } else {
            (open_hotplug(&cancel, &tracker), true)
        };
        let d = Self::start_with(scanners, tx, cancel, hotplug, tracker);
        d.lock().hotplug_open = open;
        d
    }

    /// [`Drivers::start`] with a given hotplug source (tests inject events).
    pub fn start_with(
        scanners: &[Scanner],
        tx: mpsc::Sender<ScannerEvent>,
        cancel: CancellationToken,
        hotplug: Hotplug,
        tracker: TaskTracker,
    ) -> Drivers {
        let mut inner = Inner {
            entries: HashMap::new(),
            peers: scanners.into(),
            events: tx,
            hotplug,
            hotplug_open: true,
            claims: Claims::default(),
        };
        for cfg in scanners {
            let e = inner.spawn(cfg, &cancel, &tracker);
            inner.entries.insert(cfg.id.clone(), e);
        }
        tracker.close();
        Drivers {
            tracker,
            cancel,
            inner: Arc::new(Mutex::new(inner)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a new list of entries while the others keep running: entries
    /// whose settings are unchanged are not touched (an open scanner stays
    /// open, a wait on it goes on); removed entries stop and give their
    /// device back; changed entries stop, then start with the new settings;
    /// new entries start. An unbound HID-POS entry also restarts when the
    /// other entries change, since it leaves their devices to them.
    pub async fn reconfigure(&self, scanners: &[Scanner]) -> Reconfigured {
        let mut out = Reconfigured::default();
        let mut stopping = Vec::new();
        {
            let mut g = self.lock();
            let peers_changed = fingerprint(&g.peers) != fingerprint(scanners);
            let ids: Vec<String> = g.entries.keys().cloned().collect();
            for id in ids {
                let keep = scanners.iter().find(|s| s.id == id).is_some_and(|s| {
                    format!("{s:?}") == format!("{:?}", g.entries[&id].cfg)
                        && !(peers_changed
                            && s.transport == ScannerTransport::HidPos
                            && !s.is_bound())
                });
                if !keep && let Some(e) = g.entries.remove(&id) {
                    e.cancel.cancel();
                    stopping.push(e.task);
                    if scanners.iter().any(|s| s.id == id) {
                        out.restarted.push(id);
                    } else {
                        out.removed.push(id);
                    }
                }
            }
            g.peers = scanners.into();
            if !scanners.is_empty() && !g.hotplug_open {
                g.hotplug = open_hotplug(&self.cancel, &self.tracker);
                g.hotplug_open = true;
            }
        }
        // Devices are given back before anyone opens them again.
        for task in stopping {
            if tokio::time::timeout(STOP_DEADLINE, task).await.is_err() {
                tracing::warn!("A scanner back end did not stop in time.");
            }
        }
        let mut g = self.lock();
        for cfg in scanners {
            if g.entries.contains_key(&cfg.id) {
                continue;
            }
            if !out.restarted.contains(&cfg.id) {
                out.added.push(cfg.id.clone());
            }
            let e = g.spawn(cfg, &self.cancel, &self.tracker);
            g.entries.insert(cfg.id.clone(), e);
        }
        out
    }

    /// A `scan.wait` armed `scanner`: trigger a read and/or beep, as its
    /// entry configures (`trigger_on_wait`, `beep_on_wait`). Returns at once;
    /// the back end writes the HID-POS output report or the serial
    /// `trigger_command` when it is connected.
    pub fn arm(&self, scanner: &str) -> Result<(), ArmError> {
        let g = self.lock();
        let c = g
            .entries
            .get(scanner)
            .ok_or_else(|| ArmError::UnknownScanner(scanner.to_string()))?;
        if !(c.cfg.trigger_on_wait || c.cfg.beep_on_wait) {
            return Err(ArmError::NotConfigured(scanner.to_string()));
        }
        c.tx.try_send(Control::Arm)
            .map_err(|_| ArmError::Busy(scanner.to_string()))
    }

    /// Stops every back end and waits until they have released their devices.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.tracker.wait().await;
    }
}

impl Inner {
    /// Starts the back end of one entry.
    fn spawn(&self, cfg: &Scanner, root: &CancellationToken, tracker: &TaskTracker) -> Entry {
        let span = tracing::info_span!("scanner", id = %cfg.id, transport = cfg.transport.as_str());
        let (ctl_tx, ctl_rx) = mpsc::channel(4);
        let cancel = root.child_token();
        let ctx = BackendCtx {
            cfg: cfg.clone(),
            peers: Arc::clone(&self.peers),
            events: self.events.clone(),
            control: ctl_rx,
            hotplug: self.hotplug.clone(),
            claims: self.claims.clone(),
            cancel: cancel.clone(),
        };
        let task = match cfg.transport {
            ScannerTransport::Serial => tracker.spawn(crate::serial::run(ctx).instrument(span)),
            ScannerTransport::HidPos => tracker.spawn(crate::hidpos::run(ctx).instrument(span)),
            ScannerTransport::HidKeyboard => tracker.spawn(crate::wedge::run(ctx).instrument(span)),
        };
        Entry {
            cfg: cfg.clone(),
            tx: ctl_tx,
            cancel,
            task,
        }
    }
}

/// Opens the uevent source, its reader running on `tracker`.
fn open_hotplug(cancel: &CancellationToken, tracker: &TaskTracker) -> Hotplug {
    let (hotplug, reader) = Hotplug::open(cancel.clone());
    if let Some(reader) = reader {
        tracker.spawn(reader.instrument(tracing::info_span!("hotplug")));
    }
    hotplug
}

/// The entries' settings, for telling whether any changed.
fn fingerprint(scanners: &[Scanner]) -> String {
    format!("{scanners:?}")
}
