//! What the device back ends share: state reports, frames to scans, the
//! framer settings of an entry, and device claims among several scanners.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use scanner_codec::aim::{self, Symbology};
use scanner_codec::framer::{End, FrameEvent, FramerConfig};
use scanner_codec::text;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use ybpos_config::Scanner;

use crate::scan::{Scan, ScannerEvent, ScannerInfo, ScannerState};

/// Sends state events only when the state (or device) changes.
#[derive(Debug)]
pub(crate) struct Reporter {
    id: String,
    tx: mpsc::Sender<ScannerEvent>,
    last: Option<(ScannerState, ScannerInfo)>,
}

impl Reporter {
    pub(crate) fn new(id: &str, tx: mpsc::Sender<ScannerEvent>) -> Self {
        Reporter {
            id: id.to_string(),
            tx,
            last: None,
        }
    }

    pub(crate) fn is(&self, s: &ScannerState) -> bool {
        self.last.as_ref().is_some_and(|(l, _)| l == s)
    }

    pub(crate) async fn state(&mut self, state: ScannerState, info: ScannerInfo) {
        if self
            .last
            .as_ref()
            .is_some_and(|(s, i)| *s == state && *i == info)
        {
            return;
        }
        self.last = Some((state.clone(), info.clone()));
        let _ = self
            .tx
            .send(ScannerEvent::State {
                scanner: self.id.clone(),
                state,
                info,
            })
            .await;
    }

    /// When to look again without an event: only while in the error state.
    pub(crate) fn retry(&self) -> Option<std::time::Duration> {
        matches!(self.last, Some((ScannerState::Error(_), _)))
            .then_some(crate::hotplug::ERROR_RETRY)
    }

    /// Absent, keeping what is known of the device.
    pub(crate) async fn absent(&mut self) {
        let info = self
            .last
            .as_ref()
            .map(|(_, i)| i.clone())
            .unwrap_or_default();
        self.state(ScannerState::Absent, info).await;
    }

    /// A device that is there but would not open: `absent` if its node is
    /// gone, else `error`; logged once per state, not on every retry.
    pub(crate) async fn open_failed(&mut self, what: &str, e: &std::io::Error, info: ScannerInfo) {
        let state = match e.kind() {
            std::io::ErrorKind::NotFound => ScannerState::Absent,
            _ => ScannerState::Error(e.to_string()),
        };
        if !self.is(&state) {
            warn!(path = ?info.path, error = %e, "Cannot open the {what}.");
        }
        self.state(state, info).await;
    }

    /// Sends a scan; false when the receiver is gone (shutting down).
    pub(crate) async fn scan(&self, scan: Scan) -> bool {
        self.tx.send(ScannerEvent::Scan(scan)).await.is_ok()
    }
}

/// Info for a device node.
pub(crate) fn info(path: &Path, usb: Option<&crate::sysfs::UsbId>) -> ScannerInfo {
    ScannerInfo {
        path: Some(path.to_path_buf()),
        vid: usb.map(|u| u.vid),
        pid: usb.map(|u| u.pid),
    }
}

/// The framer settings of a scanner entry (serial and keyboard wedge).
pub(crate) fn framer_config(cfg: &Scanner) -> FramerConfig {
    FramerConfig {
        framing: match &cfg.framing {
            ybpos_config::Framing::Suffix(s) => scanner_codec::framer::Framing::Suffix(s.clone()),
            ybpos_config::Framing::StxEtx => scanner_codec::framer::Framing::StxEtx,
            ybpos_config::Framing::Idle => scanner_codec::framer::Framing::Idle,
        },
        max_frame: cfg.max_frame,
        idle_gap: cfg.idle_gap,
    }
}

/// Turns a framer event into a scan, or logs why it is dropped.
pub(crate) fn frame_to_scan(scanner: &str, ev: FrameEvent) -> Option<Scan> {
    match ev {
        FrameEvent::TooLong { len } => {
            warn!(len, "Dropped an over-long frame from the scanner.");
            None
        }
        FrameEvent::Frame { data, end } => {
            if end == End::Idle {
                debug!(
                    len = data.len(),
                    "Frame ended by an idle gap, not by the configured suffix."
                );
            }
            let (symbology, body) = aim::split(&data);
            to_scan(scanner, body, symbology)
        }
    }
}

/// Decodes a scan's bytes to text (one span per scan), or logs why not.
pub(crate) fn to_scan(scanner: &str, body: &[u8], symbology: Option<Symbology>) -> Option<Scan> {
    let span = tracing::info_span!(
        "scan",
        len = body.len(),
        symbology = symbology.map(|s| s.as_aim()).unwrap_or_default()
    );
    let _enter = span.enter();
    match text::decode(body) {
        Ok(text) => {
            info!("Scan read.");
            Some(Scan {
                scanner: scanner.to_string(),
                text,
                symbology,
                at: SystemTime::now(),
            })
        }
        Err(e) => {
            warn!(reason = %e, "Dropped an unreadable scan.");
            None
        }
    }
}

/// Devices held by some scanner entry, so two entries never read one device.
#[derive(Debug, Clone, Default)]
pub(crate) struct Claims(Arc<Mutex<HashSet<PathBuf>>>);

/// A held device; released on drop.
#[derive(Debug)]
pub(crate) struct Claim {
    set: Claims,
    key: PathBuf,
}

impl Claims {
    /// Claims `key`; `None` when another entry holds it.
    pub(crate) fn claim(&self, key: &Path) -> Option<Claim> {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        set.insert(key.to_path_buf()).then(|| Claim {
            set: self.clone(),
            key: key.to_path_buf(),
        })
    }

    /// True when someone holds `key`.
    pub(crate) fn held(&self, key: &Path) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(key)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.set
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_is_claimed_once_and_released_on_drop() {
        let c = Claims::default();
        let a = c.claim(Path::new("/dev/hidraw0")).unwrap();
        assert!(c.claim(Path::new("/dev/hidraw0")).is_none());
        assert!(c.held(Path::new("/dev/hidraw0")));
        drop(a);
        assert!(c.claim(Path::new("/dev/hidraw0")).is_some());
    }

    #[test]
    fn unreadable_frames_are_dropped() {
        assert!(
            frame_to_scan(
                "s",
                FrameEvent::Frame {
                    data: b"AB\x00".to_vec(),
                    end: End::Terminator
                }
            )
            .is_none()
        );
        let s = frame_to_scan(
            "s",
            FrameEvent::Frame {
                data: b"]Q1OK".to_vec(),
                end: End::Idle,
            },
        )
        .unwrap();
        assert_eq!(
            (s.text.as_str(), s.symbology.unwrap().as_aim()),
            ("OK", "]Q1".into())
        );
        assert!(frame_to_scan("s", FrameEvent::TooLong { len: 9000 }).is_none());
    }
}
