//! USB HID-POS scanners (usage page 0x8C) through hidraw.
//!
//! - **Finding**: hidapi enumerates hidraw devices and reports each one's
//!   usage page from its report descriptor, so a scanner is found by page
//!   0x8C, not by a product id that changes with the scanner's mode; `usb`,
//!   `serial_number`, `port_path` or `path` narrow the choice (sysfs).
//! - **Layout**: hidapi fetches the report descriptor; `scanner-codec` reads
//!   the scan's fields from it ([`PosLayout`]).
//! - **Reading**: hidapi's `read` blocks a thread with no way to stop it, so
//!   the same hidraw node is read through the tokio reactor instead (one
//!   report per `read(2)`, nothing woken while idle). hidraw does not make a
//!   device exclusive; HID-POS produces no keystrokes (scanners.md §1.4), so
//!   nothing leaks to the desktop.
//! - **Trigger / beep**: the output report the descriptor offers, written
//!   with hidapi when a `scan.wait` arms the scanner and the entry asks for it.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::Instant;

use hidapi::HidApi;
use scanner_codec::hid::{PosAssembler, PosEvent, PosLayout};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use ybpos_config::Scanner;

use crate::common::wait_for_device;
use crate::common::{Claims, Control, Reporter, info, to_scan};
use crate::hotplug::{Hotplug, Wake};
use crate::scan::{ScannerEvent, ScannerState};
use crate::sysfs::{Sysfs, UsbId, binds_usb, usb_matches};

/// The Bar Code Scanner usage page.
pub const USAGE_PAGE_POS: u16 = 0x8C;

/// Runs one HID-POS scanner until `cancel` fires.
///
/// `reserved`: the other HID-POS entries that are bound to a device; an
/// unbound entry (any HID-POS device) leaves their devices to them.
pub(crate) async fn run(
    reserved: Vec<Scanner>,
    cfg: Scanner,
    tx: mpsc::Sender<ScannerEvent>,
    mut control: mpsc::Receiver<Control>,
    hotplug: Hotplug,
    claims: Claims,
    cancel: CancellationToken,
) {
    let mut reporter = Reporter::new(&cfg.id, tx);
    let mut watch = hotplug.subscribe();
    loop {
        watch.drain();
        let found = {
            let (cfg, claims, reserved) = (cfg.clone(), claims.clone(), reserved.clone());
            tokio::task::spawn_blocking(move || find(&cfg, &reserved, &Sysfs::default(), &claims))
                .await
                .unwrap_or_else(|e| Err(format!("device search failed: {e}")))
        };
        match found {
            Ok(None) => reporter.absent().await,
            Err(e) => {
                warn!(error = %e, "Cannot enumerate HID devices.");
                reporter
                    .state(ScannerState::Error(e), Default::default())
                    .await;
            }
            Ok(Some(found)) => match connect(&cfg, &found, &claims) {
                Ok(conn) => {
                    reporter
                        .state(
                            ScannerState::Connected,
                            info(&found.path, found.usb.as_ref()),
                        )
                        .await;
                    info!(path = %found.path.display(), trigger = conn.layout.trigger.is_some(),
                        "HID-POS scanner connected.");
                    match read(&cfg, conn, &reporter, &mut control, &cancel).await {
                        None => {
                            reporter.absent().await;
                            return;
                        }
                        Some(e) => {
                            warn!(path = %found.path.display(), error = %e, "Scanner disconnected.");
                            reporter.absent().await;
                            continue;
                        }
                    }
                }
                Err(e) => {
                    reporter
                        .open_failed("HID-POS scanner", &e, info(&found.path, found.usb.as_ref()))
                        .await;
                }
            },
        }
        let retry = reporter.retry();
        let woke =
            wait_for_device(&mut watch, &["hidraw"], None, retry, &mut control, &cancel).await;
        if woke == Wake::Cancelled {
            return;
        }
    }
}

/// A HID-POS device this entry may take, with its report descriptor as
/// hidapi read it (or why it could not).
struct Found {
    path: PathBuf,
    usb: Option<UsbId>,
    descriptor: Result<Vec<u8>, String>,
}

/// Enumerates with hidapi (usage page 0x8C) and picks the device this entry
/// is bound to; one enumeration per look.
fn find(
    cfg: &Scanner,
    reserved: &[Scanner],
    sysfs: &Sysfs,
    claims: &Claims,
) -> Result<Option<Found>, String> {
    let api = HidApi::new().map_err(|e| e.to_string())?;
    let want_path = cfg
        .path
        .as_ref()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()));
    for d in api.device_list() {
        if d.usage_page() != USAGE_PAGE_POS {
            continue;
        }
        let Ok(p) = d.path().to_str() else {
            continue;
        };
        let path = PathBuf::from(p);
        if want_path.as_ref().is_some_and(|w| *w != path) || claims.held(&path) {
            continue;
        }
        let usb = sysfs.usb_of_node("hidraw", &path);
        if binds_usb(cfg) && !usb.as_ref().is_some_and(|u| usb_matches(cfg, u)) {
            continue;
        }
        if !cfg.is_bound() && reserved.iter().any(|r| binds(r, &path, usb.as_ref())) {
            continue;
        }
        let descriptor = d
            .open_device(&api)
            .and_then(|dev| {
                let mut buf = vec![0u8; scanner_codec::hid::descriptor::MAX_DESCRIPTOR];
                let n = dev.get_report_descriptor(&mut buf)?;
                buf.truncate(n);
                Ok(buf)
            })
            .map_err(|e| e.to_string());
        return Ok(Some(Found {
            path,
            usb,
            descriptor,
        }));
    }
    Ok(None)
}

/// Is the device at `path` the one entry `r` is bound to?
fn binds(r: &Scanner, path: &std::path::Path, usb: Option<&UsbId>) -> bool {
    match &r.path {
        Some(p) => std::fs::canonicalize(p).is_ok_and(|p| p == path),
        None => binds_usb(r) && usb.is_some_and(|u| usb_matches(r, u)),
    }
}

struct Conn {
    fd: AsyncFd<File>,
    layout: PosLayout,
    path: CString,
    _claim: crate::common::Claim,
}

fn connect(cfg: &Scanner, found: &Found, claims: &Claims) -> std::io::Result<Conn> {
    let path = &found.path;
    let claim = claims
        .claim(path)
        .ok_or_else(|| std::io::Error::other("held by another [[scanner]] entry"))?;
    let cpath = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::other("path with a NUL byte"))?;
    // Our reading fd, opened first: it gives the precise errno (ENOENT, EACCES).
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)?;
    let desc = found
        .descriptor
        .as_ref()
        .map_err(|e| std::io::Error::other(format!("report descriptor: {e}")))?;
    let layout = PosLayout::from_descriptor(desc)
        .map_err(|e| std::io::Error::other(format!("report descriptor: {e}")))?;
    debug!(
        ?layout,
        max_frame = cfg.max_frame,
        "HID-POS layout from the report descriptor."
    );
    Ok(Conn {
        fd: crate::reactor::async_fd(file)?,
        layout,
        path: cpath,
        _claim: claim,
    })
}

/// Reads until cancelled (`None`) or the device fails (`Some(error)`).
async fn read(
    cfg: &Scanner,
    conn: Conn,
    reporter: &Reporter,
    control: &mut mpsc::Receiver<Control>,
    cancel: &CancellationToken,
) -> Option<std::io::Error> {
    // The idle gap bounds how long a multi-report scan may take.
    let gap = cfg.idle_gap.max(std::time::Duration::from_millis(500));
    let mut asm = PosAssembler::new(conn.layout.clone(), cfg.max_frame, gap);
    let mut buf = [0u8; 4096];
    let mut events = Vec::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return None,
            Some(Control::Arm) = control.recv() => arm(cfg, &conn).await,
            ready = conn.fd.readable() => {
                let mut guard = match ready {
                    Ok(g) => g,
                    Err(e) => return Some(e),
                };
                loop {
                    let mut f: &File = conn.fd.get_ref();
                    match f.read(&mut buf) {
                        Ok(0) => return Some(std::io::ErrorKind::UnexpectedEof.into()),
                        Ok(n) => asm.push(&buf[..n], Instant::now(), &mut events),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            guard.clear_ready();
                            break;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Some(e),
                    }
                }
            }
        }
        for ev in events.drain(..) {
            match ev {
                PosEvent::Scan { data, symbology } => {
                    if let Some(scan) = to_scan(&cfg.id, &data, symbology)
                        && !reporter.scan(scan).await
                    {
                        return None;
                    }
                }
                PosEvent::TooLong { len } => warn!(len, "Dropped an over-long HID-POS scan."),
                PosEvent::Stale { len } => {
                    warn!(len, "Dropped a HID-POS scan whose continuation never came.")
                }
            }
        }
    }
}

/// Writes the trigger/beep output report, if configured and offered.
async fn arm(cfg: &Scanner, conn: &Conn) {
    if !cfg.trigger_on_wait && !cfg.beep_on_wait {
        debug!("Armed; trigger_on_wait and beep_on_wait are off.");
        return;
    }
    let Some(report) = conn
        .layout
        .trigger_report(cfg.trigger_on_wait, cfg.beep_on_wait)
    else {
        info!("Armed, but the scanner's descriptor offers no trigger/beep report.");
        return;
    };
    let path = conn.path.clone();
    let res = tokio::task::spawn_blocking(move || {
        let api = HidApi::new()?;
        api.open_path(&path)?.write(&report)
    })
    .await;
    match res {
        Ok(Ok(_)) => debug!("Sent the trigger/beep report."),
        Ok(Err(e)) => warn!(error = %e, "Cannot send the trigger/beep report."),
        Err(e) => warn!(error = %e, "The trigger/beep write failed."),
    }
}
