//! Serial scanners (RS-232, USB virtual COM): the framer and the port back end.
//!
//! - [`framer`]: sans-IO framing on a suffix, STX…ETX or an idle gap.
//! - [`device`]: opens the port, reads it without polling, re-opens it after
//!   an unplug, and turns frames into scans.

pub mod device;
pub mod framer;

pub use framer::{End, FrameEvent, Framer, FramerConfig};
