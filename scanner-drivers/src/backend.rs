//! The contract between [`crate::drivers`] and a device back end, and the one
//! loop every back end runs.
//!
//! A back end is a [`Device`]: it can *look* for its device once (find it,
//! check the entry's binding, claim it, open it) and *read* an open device
//! until the device goes or the daemon stops. [`run`] does the rest, the
//! same for serial, HID-POS and keyboard wedge: the `connected` / `absent`
//! states, and, while the scanner is not connected, waiting for hotplug
//! (uevents of the device's subsystems, inotify on a configured path's
//! folder). Arm requests that come while nothing is connected are dropped.
//!
//! **Invariant:** no timer runs while a scanner is idle or absent. The wait
//! has a delay only in the error state ([`Reporter::retry`]) or, for a
//! device that asks for it ([`Device::AFTER_DISCONNECT`]), once after a
//! disconnect; an open device's own timers (idle framing, a held HID-POS
//! scan) run only while a partial scan is pending.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;
use ybpos_config::Scanner;

use crate::common::{Claims, Reporter};
use crate::hotplug::{FolderWatch, Hotplug, Wake, Watch};
use crate::scan::{ScannerEvent, ScannerInfo, ScannerState};

/// Sent to a back end by [`crate::Drivers::arm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// A `scan.wait` armed the scanner: trigger a read / beep, as configured.
    Arm,
}

/// Everything one back end is started with, the same for every transport.
#[derive(Debug)]
pub(crate) struct BackendCtx {
    /// The `[[scanner]]` entry this back end runs.
    pub(crate) cfg: Scanner,
    /// Every configured entry, this one included: an unbound HID-POS entry
    /// leaves the devices of bound entries to them.
    pub(crate) peers: Arc<[Scanner]>,
    /// Where scans and state changes go.
    pub(crate) events: mpsc::Sender<ScannerEvent>,
    /// Arm requests from [`crate::Drivers::arm`].
    pub(crate) control: mpsc::Receiver<Control>,
    /// The uevent source all back ends share.
    pub(crate) hotplug: Hotplug,
    /// Devices held by some entry, so two entries never read one device.
    pub(crate) claims: Claims,
    /// Stops the back end; it gives its device back first.
    pub(crate) cancel: CancellationToken,
}

/// How reading an open device ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadEnd {
    /// Shutdown (cancelled, or nobody takes scans any more).
    Cancelled,
    /// The device went away or failed; the back end has logged why.
    Gone,
}

/// What the reader of an open device talks to.
#[derive(Debug)]
pub(crate) struct Link<'a> {
    /// Scans go out here.
    pub(crate) reporter: &'a Reporter,
    /// Arm requests come in here.
    pub(crate) control: &'a mut mpsc::Receiver<Control>,
    /// Stops the reader.
    pub(crate) cancel: &'a CancellationToken,
}

/// Runs a blocking device search (hidapi, libusb) off the runtime's threads.
pub(crate) async fn search<T: Send + 'static>(
    f: impl FnOnce() -> Result<Option<T>, String> + Send + 'static,
) -> Result<Option<T>, String> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(format!("device search failed: {e}")))
}

/// One kind of scanner device, as [`run`] drives it.
pub(crate) trait Device {
    /// An open device, held (claim included) until [`Device::read`] returns.
    type Conn;

    /// The uevent subsystems whose events may mean the device came or went.
    const SUBSYSTEMS: &'static [&'static str];

    /// After a disconnect: `None` looks again at once; `Some(d)` first waits
    /// for an event, or `d` (a node that lingers, e.g. a motherboard COM
    /// port that hung up, would otherwise be re-opened at once).
    const AFTER_DISCONNECT: Option<Duration> = None;

    /// Looks for the device once and opens it. When it cannot, it reports
    /// why (`absent`, `error`) through `reporter` and returns `None`.
    async fn look(&mut self, reporter: &mut Reporter) -> Option<(Self::Conn, ScannerInfo)>;

    /// Reads the open device, sending its scans and answering arm requests
    /// through `link`, until cancelled or the device goes.
    async fn read(&mut self, conn: Self::Conn, link: Link<'_>) -> ReadEnd;

    /// An inotify watch on the configured path's folder, when there is one.
    fn folder(&mut self) -> Option<&mut FolderWatch> {
        None
    }
}

/// Runs one scanner entry until `ctx.cancel` fires: look, read while
/// connected, wait for hotplug while not.
pub(crate) async fn run<D: Device>(ctx: BackendCtx, mut dev: D) {
    let BackendCtx {
        cfg,
        events,
        mut control,
        hotplug,
        cancel,
        ..
    } = ctx;
    let mut reporter = Reporter::new(&cfg.id, events);
    let mut watch = hotplug.subscribe();
    let mut look = true;
    loop {
        watch.drain();
        let retry = if look {
            if let Some((conn, info)) = dev.look(&mut reporter).await {
                reporter.state(ScannerState::Connected, info).await;
                let link = Link {
                    reporter: &reporter,
                    control: &mut control,
                    cancel: &cancel,
                };
                let end = dev.read(conn, link).await;
                reporter.absent().await;
                if end == ReadEnd::Cancelled {
                    return;
                }
                // Right after a disconnect the old node may linger (or its
                // name be taken by another device).
                look = D::AFTER_DISCONNECT.is_none();
                continue;
            }
            reporter.retry()
        } else {
            D::AFTER_DISCONNECT
        };
        let woke = wait_for_device(
            &mut watch,
            D::SUBSYSTEMS,
            dev.folder(),
            retry,
            &mut control,
            &cancel,
        )
        .await;
        if woke == Wake::Cancelled {
            return;
        }
        look = true;
    }
}

/// Waits, while the scanner is not connected, for its device to (re)appear:
/// an event on `subsystems`, a change in `folder`, the `retry` delay, or
/// cancellation. Arm requests meanwhile are answered by nothing: ignored.
async fn wait_for_device(
    watch: &mut Watch,
    subsystems: &[&str],
    folder: Option<&mut FolderWatch>,
    retry: Option<Duration>,
    control: &mut mpsc::Receiver<Control>,
    cancel: &CancellationToken,
) -> Wake {
    tokio::select! {
        w = watch.wait(subsystems, folder, retry, cancel) => w,
        Some(_) = control.recv() => {
            debug!("Arm request while the scanner is not connected: ignored.");
            Wake::Changed
        }
    }
}
