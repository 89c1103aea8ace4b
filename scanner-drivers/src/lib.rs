//! Barcode scanners in, scans out.
//!
//! The crate owns the scanners a cashier plugs in and turns their bytes into
//! [`Scan`]s `{scanner, text, symbology, at}`. Protocol parsing is sans-IO
//! (the `scanner-codec` crate: bytes and `now` in, frames out) so it is
//! unit-tested and fuzzed with bytes; the device back ends here do the
//! reading and report [`ScannerEvent`]s on a channel.
//!
//! - [`scan`]: the [`Scan`] and [`ScannerEvent`] types every back end emits.
//! - [`aim`], [`text`]: AIM identifiers and scan text (from `scanner-codec`).
//! - [`drivers`]: starts one back end per configured scanner; `arm`.
//! - `backend`: what a back end is started with (`BackendCtx`), the
//!   `Device` contract and the one loop every back end runs (look, read
//!   while connected, wait for hotplug while not).
//! - Device back ends, one folder each (`mod.rs`: the `Device`; `find.rs`:
//!   which device is the entry's; `device.rs`: reading an open device):
//!   [`serial`] (RS-232, USB CDC-ACM on tokio-serial), `hidpos` (USB
//!   HID-POS, usage page 0x8C, via hidapi + hidraw), `wedge` (USB keyboard
//!   wedges, taken exclusively via rusb).
//! - `common`: state reports, frames to scans, device claims.
//! - [`hotplug`]: kernel uevents (netlink) and inotify: no polling.
//! - [`sysfs`]: which USB device a node belongs to; entry binding.
//! - `reactor`: fds and decoder deadlines on the tokio reactor (a leaf).

pub mod drivers;
pub mod hotplug;
pub mod scan;
pub mod serial;
pub mod sysfs;

mod backend;
mod common;
mod hidpos;
mod reactor;
mod wedge;

pub use drivers::{ArmError, Drivers, Reconfigured};
pub use scan::{Scan, ScannerEvent, ScannerInfo, ScannerState};
pub use scanner_codec::{aim, text};

/// The Bar Code Scanner HID usage page, by which HID-POS scanners are found.
pub use hidpos::USAGE_PAGE_POS;
