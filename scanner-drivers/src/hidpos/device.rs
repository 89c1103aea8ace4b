//! An open HID-POS scanner: the layout from its report descriptor, the
//! hidraw node read through the reactor into the sans-IO assembler (with a
//! timer only while a scan is held by a Continued bit on a full last
//! report, `continued_timeout_ms`), and the trigger/beep output report
//! written when a `scan.wait` arms it.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use hidapi::HidApi;
use scanner_codec::hid::{PosAssembler, PosEvent, PosLayout};
use tokio::io::unix::AsyncFd;
use tracing::{debug, info, warn};
use ybpos_config::Scanner;

use super::find::Found;
use crate::backend::{Control, Link, ReadEnd};
use crate::common::{Claim, Claims, to_scan};
use crate::reactor::sleep_until;

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
    let mut asm = PosAssembler::new(conn.layout.clone(), cfg.max_frame, gap)
        .with_continued_timeout(cfg.continued_timeout);
    let mut buf = [0u8; 4096];
    let mut events = Vec::new();
    loop {
        // Set only while a scan is held (last report full, Continued set):
        // no timer runs while the scanner is idle.
        let held_until = asm.deadline();
        tokio::select! {
            // Reports before the held scan's timer: if both are ready (this
            // task ran late), a continuation already queued is joined first.
            biased;
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
                        Ok(n) => asm.push(&buf[..n], now(), &mut events),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            guard.clear_ready();
                            break;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Some(e),
                    }
                }
            }
            _ = sleep_until(held_until), if held_until.is_some() => {
                if let Some(ev) = asm.poll(now()) {
                    debug!("HID-POS scan ended by a quiet gap after a Continued report.");
                    events.push(ev);
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

/// The assembler's `now`: tokio's clock (the real one, or a test's paused one).
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
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

#[cfg(test)]
mod tests {
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixDatagram;
    use std::path::Path;
    use std::time::Duration;

    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;
    use ybpos_config::ScannerTransport;

    use super::*;
    use crate::common::Reporter;
    use crate::scan::ScannerEvent;

    /// A HID-POS descriptor without report IDs or Byte Count: 56 Decoded
    /// Data bytes (NUL-padded) and the Continued bit in a 57th byte.
    const DESC: &[u8] = &[
        0x05, 0x8c, 0x15, 0x00, 0x26, 0xff, 0x00, 0x75, 0x08, 0x95, 0x38, 0x09, 0xfe, 0x82, 0x02,
        0x01, 0x25, 0x01, 0x75, 0x01, 0x95, 0x01, 0x09, 0xff, 0x81, 0x02,
    ];

    fn report(chunk: &[u8], continued: bool) -> Vec<u8> {
        let mut r = chunk.to_vec();
        r.resize(56, 0);
        r.push(u8::from(continued));
        r
    }

    /// The reader on one end of a datagram socket pair (one report per
    /// `read(2)`, as hidraw gives them); the test writes reports on the other.
    fn reader(cancel: &CancellationToken) -> (UnixDatagram, mpsc::Receiver<ScannerEvent>) {
        let (ours, scanner) = UnixDatagram::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let node = Path::new("/dev/hidraw-test");
        let conn = Conn {
            fd: crate::reactor::async_fd(File::from(OwnedFd::from(ours))).unwrap(),
            layout: PosLayout::from_descriptor(DESC).unwrap(),
            node: node.to_path_buf(),
            path: CString::new("/dev/hidraw-test").unwrap(),
            _claim: Claims::default().claim(node).unwrap(),
        };
        let cfg = crate::sysfs::tests::entry(ScannerTransport::HidPos);
        let (tx, rx) = mpsc::channel(8);
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let reporter = Reporter::new("pos", tx);
            let (_arm, mut control) = mpsc::channel(1);
            let link = Link {
                reporter: &reporter,
                control: &mut control,
                cancel: &cancel,
            };
            read_reports(&cfg, &conn, link).await
        });
        (scanner, rx)
    }

    async fn scan_text(rx: &mut mpsc::Receiver<ScannerEvent>) -> String {
        match rx.recv().await {
            Some(ScannerEvent::Scan(s)) => s.text,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_scan_is_delivered_by_the_timer_after_the_quiet_gap() {
        let cancel = CancellationToken::new();
        let (scanner, mut rx) = reader(&cancel);
        let code: String = (0..56).map(|i| char::from(b'0' + i % 10)).collect();
        let t0 = tokio::time::Instant::now();
        scanner.send(&report(code.as_bytes(), true)).unwrap();
        assert_eq!(scan_text(&mut rx).await, code);
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_millis(50) && waited < Duration::from_millis(60),
            "{waited:?}"
        );
        // Idle again: nothing more, however long we wait.
        let idle = tokio::time::timeout(Duration::from_secs(3600), rx.recv()).await;
        assert!(idle.is_err(), "{idle:?}");
        cancel.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_continuation_within_the_gap_is_joined_by_the_reader() {
        let cancel = CancellationToken::new();
        let (scanner, mut rx) = reader(&cancel);
        let code: String = (0..60).map(|i| char::from(b'A' + i % 26)).collect();
        scanner.send(&report(&code.as_bytes()[..56], true)).unwrap();
        tokio::time::sleep(Duration::from_millis(8)).await;
        scanner
            .send(&report(&code.as_bytes()[56..], false))
            .unwrap();
        assert_eq!(scan_text(&mut rx).await, code);
        cancel.cancel();
    }
}
