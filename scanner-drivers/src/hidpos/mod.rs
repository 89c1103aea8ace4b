//! USB HID-POS scanners (usage page 0x8C) through hidraw.
//!
//! - **Finding** (`find`): hidapi enumerates hidraw devices and reports each
//!   one's usage page from its report descriptor, so a scanner is found by
//!   page 0x8C, not by a product id that changes with the scanner's mode;
//!   `usb`, `serial_number`, `port_path` or `path` narrow the choice (sysfs).
//! - **Layout** (`device`): hidapi fetches the report descriptor;
//!   `scanner-codec` reads the scan's fields from it ([`PosLayout`]).
//! - **Reading** (`device`): hidapi's `read` blocks a thread with no way to
//!   stop it, so the same hidraw node is read through the tokio reactor
//!   instead (one report per `read(2)`, nothing woken while idle). hidraw
//!   does not make a device exclusive; HID-POS produces no keystrokes
//!   (scanners.md §1.4), so nothing leaks to the desktop.
//! - **Trigger / beep** (`device`): the output report the descriptor
//!   offers, written with hidapi when a `scan.wait` arms the scanner and the
//!   entry asks for it.
//!
//! [`PosLayout`]: scanner_codec::hid::PosLayout

mod device;
mod find;

use tracing::{info, warn};
use ybpos_config::{Scanner, ScannerTransport};

use crate::backend::{BackendCtx, Device, Link, ReadEnd, search};
use crate::common::{Claims, Reporter, info};
use crate::scan::{ScannerInfo, ScannerState};
use crate::sysfs::Sysfs;

/// The Bar Code Scanner usage page.
pub const USAGE_PAGE_POS: u16 = 0x8C;

/// Runs one HID-POS scanner until `ctx.cancel` fires.
pub(crate) async fn run(ctx: BackendCtx) {
    // The other HID-POS entries that are bound to a device: an unbound
    // entry (any HID-POS device) leaves their devices to them.
    let reserved = ctx
        .peers
        .iter()
        .filter(|o| o.transport == ScannerTransport::HidPos && o.id != ctx.cfg.id && o.is_bound())
        .cloned()
        .collect();
    let dev = HidPos {
        cfg: ctx.cfg.clone(),
        reserved,
        claims: ctx.claims.clone(),
    };
    crate::backend::run(ctx, dev).await;
}

/// A HID-POS scanner entry, as the shared back-end loop drives it.
struct HidPos {
    cfg: Scanner,
    reserved: Vec<Scanner>,
    claims: Claims,
}

impl Device for HidPos {
    type Conn = device::Conn;
    const SUBSYSTEMS: &'static [&'static str] = &["hidraw"];

    async fn look(&mut self, reporter: &mut Reporter) -> Option<(device::Conn, ScannerInfo)> {
        let (cfg, claims, reserved) =
            (self.cfg.clone(), self.claims.clone(), self.reserved.clone());
        let found = search(move || find::find(&cfg, &reserved, &Sysfs::default(), &claims)).await;
        let found = match found {
            Ok(Some(found)) => found,
            Ok(None) => {
                reporter.absent().await;
                return None;
            }
            Err(e) => {
                warn!(error = %e, "Cannot enumerate HID devices.");
                reporter
                    .state(ScannerState::Error(e), Default::default())
                    .await;
                return None;
            }
        };
        let info = info(&found.path, found.usb.as_ref());
        match device::connect(&self.cfg, &found, &self.claims) {
            Ok(conn) => {
                info!(path = %found.path.display(), trigger = conn.layout.trigger.is_some(),
                    "HID-POS scanner connected.");
                Some((conn, info))
            }
            Err(e) => {
                reporter.open_failed("HID-POS scanner", &e, info).await;
                None
            }
        }
    }

    async fn read(&mut self, conn: device::Conn, link: Link<'_>) -> ReadEnd {
        device::read(&self.cfg, conn, link).await
    }
}
