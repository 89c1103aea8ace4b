//! A taken keyboard wedge: one thread blocked in `read_interrupt`, its
//! reports decoded (US layout, Shift only, Alt+numpad) and framed on the
//! suffix; on stop, releasing the interface ends the thread, which gives
//! the keyboard back to the kernel.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusb::{Context, DeviceHandle};
use scanner_codec::framer::Framer;
use scanner_codec::hid::{AltMode, KeyboardDecoder};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};
use ybpos_config::{AltCodeMode, Scanner};

use crate::backend::{Control, Link, ReadEnd};
use crate::common::{Claim, frame_to_scan, framer_config};
use crate::reactor::sleep_until;
use crate::scan::ScannerInfo;

/// How long a stop waits for the reader thread to give the device back.
const GIVE_BACK: Duration = Duration::from_secs(3);

/// A wedge we hold: its keyboard interface claimed, the kernel driver
/// detached (when it was bound).
pub(super) struct Conn {
    pub(super) handle: Arc<DeviceHandle<Context>>,
    pub(super) iface: u8,
    pub(super) ep: u8,
    pub(super) packet: usize,
    pub(super) detached: bool,
    /// The device's usbfs node, also its claim key.
    pub(super) key: PathBuf,
    pub(super) info: ScannerInfo,
    pub(super) _claim: Claim,
}

/// Reads until cancelled or the device goes (logged here); always gives
/// the interface back to the kernel.
pub(super) async fn read(cfg: &Scanner, conn: Conn, link: Link<'_>) -> ReadEnd {
    let (rep_tx, mut rep_rx) = mpsc::channel::<Result<Vec<u8>, rusb::Error>>(64);
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let stop = Arc::new(AtomicBool::new(false));
    {
        let (h, stop) = (Arc::clone(&conn.handle), Arc::clone(&stop));
        let (iface, ep, packet, detached) = (conn.iface, conn.ep, conn.packet, conn.detached);
        let spawned = std::thread::Builder::new()
            .name(format!("wedge-{}", cfg.id))
            .spawn(move || {
                let mut buf = vec![0u8; packet];
                while !stop.load(Ordering::Acquire) {
                    match h.read_interrupt(ep, &mut buf, Duration::ZERO) {
                        Ok(n) => {
                            if rep_tx.blocking_send(Ok(buf[..n].to_vec())).is_err() {
                                break;
                            }
                        }
                        Err(rusb::Error::Timeout | rusb::Error::Interrupted) => {}
                        Err(e) => {
                            let _ = rep_tx.blocking_send(Err(e));
                            break;
                        }
                    }
                }
                // Give the keyboard back to the kernel (fails harmlessly after an unplug).
                let _ = h.release_interface(iface);
                if detached {
                    let _ = h.attach_kernel_driver(iface);
                }
                let _ = done_tx.send(());
            });
        if let Err(e) = spawned {
            warn!(error = %e, "Cannot start the reader thread.");
            let _ = conn.handle.release_interface(conn.iface);
            if conn.detached {
                let _ = conn.handle.attach_kernel_driver(conn.iface);
            }
            return ended(link.cancel.is_cancelled());
        }
    }
    let mode = match cfg.alt_codes {
        AltCodeMode::Unicode => AltMode::Unicode,
        AltCodeMode::Gbk => AltMode::Gbk,
        AltCodeMode::Windows1252 => AltMode::Windows1252,
    };
    let mut keys = KeyboardDecoder::new(mode);
    let mut framer = Framer::new(framer_config(cfg));
    let mut bytes = Vec::new();
    let mut frames = Vec::new();
    let cancelled = loop {
        let deadline = framer.deadline();
        tokio::select! {
            _ = link.cancel.cancelled() => break true,
            _ = sleep_until(deadline), if deadline.is_some() => {
                if let Some(ev) = framer.poll_idle(Instant::now()) {
                    frames.push(ev);
                }
            }
            Some(Control::Arm) = link.control.recv() => {
                debug!("Armed; a keyboard wedge has no trigger.");
            }
            r = rep_rx.recv() => match r {
                Some(Ok(report)) => {
                    let now = Instant::now();
                    keys.push(&report, &mut bytes);
                    // Key reports without text yet (Alt held, releases) are
                    // still the scanner typing: the frame is not idle.
                    framer.touch(now);
                    if !bytes.is_empty() {
                        framer.push(&bytes, now, &mut frames);
                        bytes.clear();
                    }
                }
                Some(Err(e)) => {
                    warn!(device = %conn.key.display(), error = %e, "Scanner disconnected.");
                    break false;
                }
                None => break false,
            },
        }
        let mut gone = false;
        for ev in frames.drain(..) {
            if let Some(scan) = frame_to_scan(&cfg.id, ev) {
                gone |= !link.reporter.scan(scan).await;
            }
        }
        if gone {
            break true;
        }
    };
    // Stop the reader: releasing the interface kills its pending transfer.
    stop.store(true, Ordering::Release);
    rep_rx.close();
    let (h, iface) = (Arc::clone(&conn.handle), conn.iface);
    let _ = tokio::task::spawn_blocking(move || h.release_interface(iface)).await;
    match tokio::time::timeout(GIVE_BACK, done_rx).await {
        Ok(_) => {
            info!(device = %conn.key.display(), "Keyboard-wedge scanner given back to the kernel.")
        }
        Err(_) => warn!(device = %conn.key.display(), "The reader did not stop in time."),
    }
    ended(cancelled)
}

fn ended(cancelled: bool) -> ReadEnd {
    if cancelled {
        ReadEnd::Cancelled
    } else {
        ReadEnd::Gone
    }
}
