//! Starts one back end per configured scanner and stops them together.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use ybpos_config::{Scanner, ScannerTransport};

use crate::scan::{ScannerEvent, ScannerInfo, ScannerState};

/// The running scanner back ends.
#[derive(Debug)]
pub struct Drivers {
    tracker: TaskTracker,
    cancel: CancellationToken,
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
        for cfg in scanners {
            let span =
                tracing::info_span!("scanner", id = %cfg.id, transport = cfg.transport.as_str());
            let tx = tx.clone();
            let cancel = cancel.clone();
            let cfg = cfg.clone();
            match cfg.transport {
                ScannerTransport::Serial => {
                    tracker.spawn(crate::serial::device::run(cfg, tx, cancel).instrument(span));
                }
                ScannerTransport::HidPos | ScannerTransport::HidKeyboard => {
                    tracker.spawn(
                        async move {
                            let _ = tx
                                .send(ScannerEvent::State {
                                    scanner: cfg.id.clone(),
                                    state: ScannerState::Error(format!(
                                        "transport {} is not supported by this build",
                                        cfg.transport.as_str()
                                    )),
                                    info: ScannerInfo::default(),
                                })
                                .await;
                        }
                        .instrument(span),
                    );
                }
            }
        }
        tracker.close();
        Drivers { tracker, cancel }
    }

    /// Stops every back end and waits until they have released their devices.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.tracker.wait().await;
    }
}
