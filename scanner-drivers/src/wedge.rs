//! USB keyboard-wedge scanners, read exclusively through libusb (rusb).
//!
//! The scanner's keyboard interface is taken from the kernel (detach the
//! `usbhid` driver, claim the interface), so no keystroke reaches the focused
//! window or the console; it is given back (release, re-attach) when we stop
//! or the device goes. While we own it we select the boot protocol and switch
//! the scanner's LEDs off, so its idea of CapsLock cannot flip letter case;
//! the text itself is decoded with the US layout and Shift only
//! ([`KeyboardDecoder`]), then cut on the configured suffix (Enter/Tab).
//!
//! libusb has only blocking reads here, so one thread per connected wedge
//! waits in `read_interrupt` with no timeout (nothing wakes while idle); to
//! stop it, the interface is released from the async side, which kills the
//! pending transfer in the kernel, and the thread then re-attaches the
//! kernel driver. A device is bound by `usb` vid:pid plus `serial_number`
//! or `port_path`; it is looked for again on `usb` uevents.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusb::{Context, DeviceHandle, Direction, TransferType, UsbContext};
use scanner_codec::framer::Framer;
use scanner_codec::hid::{AltMode, KeyboardDecoder};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use ybpos_config::{AltCodeMode, Scanner};

use crate::common::wait_for_device;
use crate::common::{Claim, Claims, Control, Reporter, frame_to_scan};
use crate::hotplug::{Hotplug, Wake};
use crate::scan::{ScannerEvent, ScannerInfo, ScannerState};
use crate::serial::device::{framer_config, sleep_until};

/// How long a stop waits for the reader thread to give the device back.
const GIVE_BACK: Duration = Duration::from_secs(3);

/// Runs one keyboard-wedge scanner until `cancel` fires.
pub(crate) async fn run(
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
            let (cfg, claims) = (cfg.clone(), claims.clone());
            tokio::task::spawn_blocking(move || take(&cfg, &claims))
                .await
                .unwrap_or_else(|e| Err(format!("device search failed: {e}")))
        };
        match found {
            Ok(None) => reporter.absent().await,
            Err(e) => {
                if !reporter.is(&ScannerState::Error(e.clone())) {
                    warn!(error = %e, "Cannot take the keyboard-wedge scanner.");
                }
                reporter
                    .state(ScannerState::Error(e), Default::default())
                    .await;
            }
            Ok(Some(conn)) => {
                reporter
                    .state(ScannerState::Connected, conn.info.clone())
                    .await;
                info!(device = %conn.key.display(), interface = conn.iface,
                    kernel_driver_detached = conn.detached, "Keyboard-wedge scanner taken exclusively.");
                let cancelled = read(&cfg, conn, &reporter, &mut control, &cancel).await;
                reporter.absent().await;
                if cancelled {
                    return;
                }
                continue;
            }
        }
        let retry = reporter.retry();
        let woke = wait_for_device(&mut watch, &["usb"], None, retry, &mut control, &cancel).await;
        if woke == Wake::Cancelled {
            return;
        }
    }
}

/// A wedge we hold.
struct Conn {
    handle: Arc<DeviceHandle<Context>>,
    iface: u8,
    ep: u8,
    packet: usize,
    detached: bool,
    key: PathBuf,
    info: ScannerInfo,
    _claim: Claim,
}

/// Finds the bound device, detaches the kernel driver and claims the
/// keyboard interface. `Ok(None)`: not plugged in.
fn take(cfg: &Scanner, claims: &Claims) -> Result<Option<Conn>, String> {
    let ctx = Context::new().map_err(|e| format!("libusb: {e}"))?;
    let devices = ctx.devices().map_err(|e| format!("libusb: {e}"))?;
    let mut failed = None;
    for dev in devices.iter() {
        let Ok(desc) = dev.device_descriptor() else {
            continue;
        };
        if let Some(m) = &cfg.usb
            && (m.vid != desc.vendor_id() || m.pid.is_some_and(|p| p != desc.product_id()))
        {
            continue;
        }
        let ports = dev.port_numbers().unwrap_or_default();
        let port_path = format!(
            "{}-{}",
            dev.bus_number(),
            ports
                .iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join(".")
        );
        if cfg.port_path.as_ref().is_some_and(|p| *p != port_path) {
            continue;
        }
        let key = PathBuf::from(format!(
            "/dev/bus/usb/{:03}/{:03}",
            dev.bus_number(),
            dev.address()
        ));
        if claims.held(&key) {
            continue;
        }
        let handle = match dev.open() {
            Ok(h) => h,
            Err(e) => {
                // Maybe not ours (bound by serial number): look on, report
                // the failure only if nothing else matches.
                failed = Some(format!("cannot open {}: {e}", key.display()));
                continue;
            }
        };
        if let Some(want) = &cfg.serial_number {
            let sn = handle.read_serial_number_string_ascii(&desc).ok();
            if sn.as_deref() != Some(want.as_str()) {
                continue;
            }
        }
        let Some((iface, ep, packet, boot)) = keyboard_interface(&dev) else {
            return Err(format!("{} has no HID keyboard interface", key.display()));
        };
        let detached = match handle.kernel_driver_active(iface) {
            Ok(true) => {
                handle
                    .detach_kernel_driver(iface)
                    .map_err(|e| format!("cannot detach the kernel driver: {e}"))?;
                true
            }
            _ => false,
        };
        if let Err(e) = handle.claim_interface(iface) {
            if detached {
                let _ = handle.attach_kernel_driver(iface);
            }
            return Err(format!("cannot claim interface {iface}: {e}"));
        }
        let t = Duration::from_millis(500);
        if boot {
            // SET_PROTOCOL(boot): 8-byte reports whatever the report descriptor says.
            let _ = handle.write_control(0x21, 0x0B, 0, iface as u16, &[], t);
        }
        // SET_REPORT(output, LEDs off): the scanner must not think CapsLock is on.
        let _ = handle.write_control(0x21, 0x09, 0x0200, iface as u16, &[0], t);
        let Some(claim) = claims.claim(&key) else {
            let _ = handle.release_interface(iface);
            continue;
        };
        return Ok(Some(Conn {
            handle: Arc::new(handle),
            iface,
            ep,
            packet,
            detached,
            info: ScannerInfo {
                path: Some(key.clone()),
                vid: Some(desc.vendor_id()),
                pid: Some(desc.product_id()),
            },
            key,
            _claim: claim,
        }));
    }
    failed.map_or(Ok(None), Err)
}

/// The keyboard interface: (number, interrupt IN endpoint, packet size, boot subclass).
fn keyboard_interface(dev: &rusb::Device<Context>) -> Option<(u8, u8, usize, bool)> {
    let cfg = dev.active_config_descriptor().ok()?;
    let mut best: Option<(u8, u8, usize, bool, u8)> = None;
    for iface in cfg.interfaces() {
        for alt in iface.descriptors() {
            if alt.class_code() != 3 {
                continue;
            }
            let Some(ep) = alt.endpoint_descriptors().find(|e| {
                e.direction() == Direction::In && e.transfer_type() == TransferType::Interrupt
            }) else {
                continue;
            };
            // Prefer the boot keyboard protocol; otherwise the first HID interface.
            let rank = if alt.protocol_code() == 1 { 0 } else { 1 };
            if best.is_none_or(|b| rank < b.4) {
                best = Some((
                    alt.interface_number(),
                    ep.address(),
                    ep.max_packet_size().max(8) as usize,
                    alt.sub_class_code() == 1,
                    rank,
                ));
            }
        }
    }
    best.map(|(i, e, p, b, _)| (i, e, p, b))
}

/// Reads until cancelled (true) or the device goes (false); always gives the
/// interface back to the kernel.
async fn read(
    cfg: &Scanner,
    conn: Conn,
    reporter: &Reporter,
    control: &mut mpsc::Receiver<Control>,
    cancel: &CancellationToken,
) -> bool {
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
            return cancel.is_cancelled();
        }
    }
    let mode = match cfg.alt_codes {
        AltCodeMode::Unicode => AltMode::Unicode,
        AltCodeMode::Gbk => AltMode::Gbk,
    };
    let mut keys = KeyboardDecoder::new(mode);
    let mut framer = Framer::new(framer_config(cfg));
    let mut bytes = Vec::new();
    let mut frames = Vec::new();
    let cancelled = loop {
        let deadline = framer.deadline();
        tokio::select! {
            _ = cancel.cancelled() => break true,
            _ = sleep_until(deadline), if deadline.is_some() => {
                if let Some(ev) = framer.poll_idle(Instant::now()) {
                    frames.push(ev);
                }
            }
            Some(Control::Arm) = control.recv() => {
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
                gone |= !reporter.scan(scan).await;
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
    cancelled
}
