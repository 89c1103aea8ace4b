//! Sans-IO decoders for barcode scanners: bytes and `now` in, results out.
//!
//! Nothing in this crate opens a file, reads a clock or spawns a task, so
//! every decoder is tested with byte vectors and fuzzed (`../fuzz`). The
//! device back ends in `scanner-drivers` feed these with what they read.
//!
//! - [`aim`]: AIM symbology identifiers (`]Q1` …), parsed and stripped.
//! - [`text`]: scan bytes to text (UTF-8, else GB18030), refusing garbage.
//! - [`framer`]: the serial framer (suffix, STX…ETX, idle gap).
//! - [`hid`]: HID report descriptors, HID-POS reassembly and the
//!   keyboard-wedge decoder (US layout, Shift only, Alt+numpad).
//! - [`uevent`]: kernel / udev hotplug messages from netlink.
//!
//! **Invariant:** memory is bounded by configured maxima whatever the input,
//! and no input makes a decoder panic.

pub mod aim;
pub mod framer;
pub mod hid;
pub mod text;
pub mod uevent;
