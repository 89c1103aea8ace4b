//! An open HID-POS scanner: the layout from its report descriptor, the
//! hidraw node read through the reactor into the sans-IO assembler, and the
//! trigger/beep output report written when a `scan.wait` arms it.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::Instant;

use hidapi::HidApi;
use scanner_codec::hid::{PosAssembler, PosEvent, PosLayout};
use tokio::io::unix::AsyncFd;
use tracing::{debug, info, warn};
use ybpos_config::Scanner;

use super::find::Found;
use crate::backend::{Control, Link, ReadEnd};
use crate::common::{Claim, Claims, to_scan};

/// An open HID-POS scanner, held (claim included) while it is read.
pub(super) struct Conn {
    fd: AsyncFd<File>,
    /// Where the scan lives in its reports, and its trigger report.
    pub(super) layout: PosLayout,
    /// The hidraw node, for logs.
    node: PathBuf,
    /// The same node for hidapi's `open_path` (output reports).
    path: CString,
    _claim: Claim,
}

/// Claims and opens the device `find` chose and reads its layout.
pub(super) fn connect(cfg: &Scanner, found: &Found, claims: &Claims) -> std::io::Result<Conn> {
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
        node: path.clone(),
        path: cpath,
        _claim: claim,
    })
}

/// Reads until cancelled or the device fails (logged here).
pub(super) async fn read(cfg: &Scanner, conn: Conn, link: Link<'_>) -> ReadEnd {
    match read_reports(cfg, &conn, link).await {
        None => ReadEnd::Cancelled,
        Some(e) => {
            warn!(path = %conn.node.display(), error = %e, "Scanner disconnected.");
            ReadEnd::Gone
        }
    }
}

/// Reads until cancelled (`None`) or the device fails (`Some(error)`).
async fn read_reports(cfg: &Scanner, conn: &Conn, link: Link<'_>) -> Option<std::io::Error> {
    // The idle gap bounds how long a multi-report scan may take.
    let gap = cfg.idle_gap.max(std::time::Duration::from_millis(500));
    let mut asm = PosAssembler::new(conn.layout.clone(), cfg.max_frame, gap);
    let mut buf = [0u8; 4096];
    let mut events = Vec::new();
    loop {
        tokio::select! {
            _ = link.cancel.cancelled() => return None,
            Some(Control::Arm) = link.control.recv() => arm(cfg, conn).await,
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
                        && !link.reporter.scan(scan).await
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
