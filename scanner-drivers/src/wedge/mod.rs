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
//!
//! - `find`: the bound device found with libusb and taken from the kernel.
//! - `device`: the reader thread, decoding and framing, giving it back.
//!
//! [`KeyboardDecoder`]: scanner_codec::hid::KeyboardDecoder

mod device;
mod find;

use tracing::{info, warn};
use ybpos_config::Scanner;

use crate::backend::{BackendCtx, Device, Link, ReadEnd, search};
use crate::common::{Claims, Reporter};
use crate::scan::{ScannerInfo, ScannerState};

/// Runs one keyboard-wedge scanner until `ctx.cancel` fires.
pub(crate) async fn run(ctx: BackendCtx) {
    let dev = Wedge {
        cfg: ctx.cfg.clone(),
        claims: ctx.claims.clone(),
    };
    crate::backend::run(ctx, dev).await;
}

/// A keyboard-wedge scanner entry, as the shared back-end loop drives it.
struct Wedge {
    cfg: Scanner,
    claims: Claims,
}

impl Device for Wedge {
    type Conn = device::Conn;
    const SUBSYSTEMS: &'static [&'static str] = &["usb"];

    async fn look(&mut self, reporter: &mut Reporter) -> Option<(device::Conn, ScannerInfo)> {
        let (cfg, claims) = (self.cfg.clone(), self.claims.clone());
        let found = search(move || find::take(&cfg, &claims)).await;
        match found {
            Ok(Some(conn)) => {
                info!(device = %conn.key.display(), interface = conn.iface,
                    kernel_driver_detached = conn.detached, "Keyboard-wedge scanner taken exclusively.");
                let info = conn.info.clone();
                Some((conn, info))
            }
            Ok(None) => {
                reporter.absent().await;
                None
            }
            Err(e) => {
                if !reporter.is(&ScannerState::Error(e.clone())) {
                    warn!(error = %e, "Cannot take the keyboard-wedge scanner.");
                }
                reporter
                    .state(ScannerState::Error(e), Default::default())
                    .await;
                None
            }
        }
    }

    async fn read(&mut self, conn: device::Conn, link: Link<'_>) -> ReadEnd {
        device::read(&self.cfg, conn, link).await
    }
}
