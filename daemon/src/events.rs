//! The event bus behind `events.subscribe`: topics `scan`, `scanner`, `txn`, `gateway`.
//!
//! A bounded broadcast of domain values (the API renders them): a
//! subscriber that cannot keep up loses events, not memory, and is told how
//! many with one `lagged` event.

use std::sync::Arc;
use std::time::SystemTime;

use scanner_drivers::ScannerState;
use scanner_drivers::aim::Symbology;
use settlement_client::LinkState;
use tokio::sync::broadcast;

use crate::classify::CodeClass;
use crate::engine::machine::State;

/// How many events are kept for slow subscribers before they lag.
pub const EVENT_BUFFER: usize = 1024;

/// One event.
#[derive(Debug, Clone)]
pub enum Event {
    /// A scan was read and classified (topic `scan`).
    Scan(ScanEvent),
    /// A scanner's state changed (topic `scanner`).
    Scanner {
        /// The configured scanner id.
        scanner: String,
        /// Its new state.
        state: ScannerState,
    },
    /// A transaction record changed state (topic `txn`).
    Txn {
        /// The record.
        txn_id: String,
        /// The caller's idempotency key.
        client_ref: String,
        /// Transaction number.
        infno: String,
        /// The new state.
        state: State,
    },
    /// The gateway link changed (topic `gateway`).
    Gateway(LinkState),
}

/// A scan as the `scan` topic reports it.
#[derive(Debug, Clone)]
pub struct ScanEvent {
    /// The hub's id of the scan (`s1`, `s2`, …).
    pub scan_id: String,
    /// The configured scanner id.
    pub scanner: String,
    /// When it was read.
    pub at: SystemTime,
    /// What it is.
    pub class: CodeClass,
    /// The AIM symbology, when the scanner sent one.
    pub symbology: Option<Symbology>,
    /// The code's text.
    pub text: String,
}

impl Event {
    /// The topic clients subscribe to.
    pub fn topic(&self) -> &'static str {
        match self {
            Event::Scan(_) => "scan",
            Event::Scanner { .. } => "scanner",
            Event::Txn { .. } => "txn",
            Event::Gateway(_) => "gateway",
        }
    }
}

/// The topics a client may subscribe to.
pub const TOPICS: &[&str] = &["scan", "scanner", "txn", "gateway"];

/// Publishes events to every subscriber.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<Event>>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            tx: broadcast::channel(EVENT_BUFFER).0,
        }
    }
}

impl EventBus {
    /// Publishes; nobody listening is fine.
    pub fn publish(&self, event: Event) {
        let _ = self.tx.send(Arc::new(event));
    }

    /// A new receiver.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }
}
