//! What every scanner back end reports: scans and state changes.

use std::path::PathBuf;
use std::time::SystemTime;

use crate::aim::Symbology;

/// One code read by one scanner.
#[derive(Clone, PartialEq, Eq)]
pub struct Scan {
    /// The configured id of the scanner that read it.
    pub scanner: String,
    /// The code's content as text, AIM prefix and suffix removed.
    pub text: String,
    /// The AIM symbology identifier, when the scanner sent one.
    pub symbology: Option<Symbology>,
    /// When the last byte of the scan arrived.
    pub at: SystemTime,
}

/// `Debug` never prints the code itself: scan text is personal data.
impl std::fmt::Debug for Scan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scan")
            .field("scanner", &self.scanner)
            .field("text_len", &self.text.len())
            .field("symbology", &self.symbology)
            .field("at", &self.at)
            .finish()
    }
}

/// Whether a scanner can be read right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScannerState {
    /// Open and being read.
    Connected,
    /// Not present (unplugged, or not yet plugged in).
    Absent,
    /// Present but unusable; the text says why (permissions, busy …).
    Error(String),
}

impl ScannerState {
    /// The API spelling: `connected`, `absent`, `error`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ScannerState::Connected => "connected",
            ScannerState::Absent => "absent",
            ScannerState::Error(_) => "error",
        }
    }
}

/// What is known about the device behind a scanner id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScannerInfo {
    /// Device node in use (`/dev/ttyACM0`, `/dev/hidraw2` …).
    pub path: Option<PathBuf>,
    /// USB vendor id, when known.
    pub vid: Option<u16>,
    /// USB product id, when known.
    pub pid: Option<u16>,
}

/// An event from a scanner back end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScannerEvent {
    /// A code was read.
    Scan(Scan),
    /// A scanner changed state (connected, unplugged, failed).
    State {
        /// The configured scanner id.
        scanner: String,
        /// The new state.
        state: ScannerState,
        /// The device, as far as known.
        info: ScannerInfo,
    },
}
