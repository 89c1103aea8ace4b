//! Serial scanners (RS-232, USB virtual COM).
//!
//! - [`framer`]: the sans-IO framer (suffix, STX…ETX, idle gap), from
//!   `scanner-codec`.
//! - `device`: finds the port (path, or USB vid:pid + serial number / port
//!   path), reads it without polling, re-opens it after an unplug, and turns
//!   frames into scans.

pub(crate) mod device;

pub use scanner_codec::framer;
pub use scanner_codec::framer::{End, FrameEvent, Framer, FramerConfig, Framing};
