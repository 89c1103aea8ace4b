//! Barcode scanners in, scans out.
//!
//! The crate owns the scanners a cashier plugs in and turns their bytes into
//! [`Scan`]s `{scanner, text, symbology, at}`. Protocol parsing is sans-IO
//! (bytes and `now` in, frames out) so it is unit-tested and fuzzed with bytes;
//! device back ends do the reading and report [`ScannerEvent`]s on a channel.
//!
//! - [`scan`]: the [`Scan`] and [`ScannerEvent`] types every back end emits.
//! - [`aim`]: AIM symbology identifiers (`]Q1` …), parsed and stripped.
//! - [`text`]: scan bytes to text (UTF-8, else GB18030), refusing garbage.
//! - [`serial`]: the serial framer (sans-IO) and the serial port back end.
//! - [`drivers`]: starts one back end per configured scanner.

pub mod aim;
pub mod drivers;
pub mod scan;
pub mod serial;
pub mod text;

pub use drivers::Drivers;
pub use scan::{Scan, ScannerEvent, ScannerInfo, ScannerState};
