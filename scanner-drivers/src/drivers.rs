//! Starts one back end per configured scanner and the hotplug source they
//! share; arms scanners for a `scan.wait`; stops them together.

use std::collections::HashMap;
use std::sync::Arc;

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
    control: Arc<HashMap<String, Control_>>,
}

#[derive(Debug)]
struct Control_ {
    tx: mpsc::Sender<Control>,
    configured: bool,
}

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
        let (hotplug, reader) = if scanners.is_empty() {
            (Hotplug::manual(), None)
        } else {
            Hotplug::open(cancel.clone())
        };
        if let Some(reader) = reader {
            tracker.spawn(reader.instrument(tracing::info_span!("hotplug")));
        }
        Self::start_with(scanners, tx, cancel, hotplug, tracker)
    }

    /// [`Drivers::start`] with a given hotplug source (tests inject events).
    pub fn start_with(
        scanners: &[Scanner],
        tx: mpsc::Sender<ScannerEvent>,
        cancel: CancellationToken,
        hotplug: Hotplug,
        tracker: TaskTracker,
    ) -> Drivers {
        let claims = Claims::default();
        let peers: Arc<[Scanner]> = scanners.into();
        let mut control = HashMap::new();
        for cfg in scanners {
            let span =
                tracing::info_span!("scanner", id = %cfg.id, transport = cfg.transport.as_str());
            let (ctl_tx, ctl_rx) = mpsc::channel(4);
            control.insert(
                cfg.id.clone(),
                Control_ {
                    tx: ctl_tx,
                    configured: cfg.trigger_on_wait || cfg.beep_on_wait,
                },
            );
            let ctx = BackendCtx {
                cfg: cfg.clone(),
                peers: Arc::clone(&peers),
                events: tx.clone(),
                control: ctl_rx,
                hotplug: hotplug.clone(),
                claims: claims.clone(),
                cancel: cancel.clone(),
            };
            match cfg.transport {
                ScannerTransport::Serial => tracker.spawn(crate::serial::run(ctx).instrument(span)),
                ScannerTransport::HidPos => tracker.spawn(crate::hidpos::run(ctx).instrument(span)),
                ScannerTransport::HidKeyboard => {
                    tracker.spawn(crate::wedge::run(ctx).instrument(span))
                }
            };
        }
        tracker.close();
        Drivers {
            tracker,
            cancel,
            control: Arc::new(control),
        }
    }

    /// A `scan.wait` armed `scanner`: trigger a read and/or beep, as its
    /// entry configures (`trigger_on_wait`, `beep_on_wait`). Returns at once;
    /// the back end writes the HID-POS output report or the serial
    /// `trigger_command` when it is connected.
    pub fn arm(&self, scanner: &str) -> Result<(), ArmError> {
        let c = self
            .control
            .get(scanner)
            .ok_or_else(|| ArmError::UnknownScanner(scanner.to_string()))?;
        if !c.configured {
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
