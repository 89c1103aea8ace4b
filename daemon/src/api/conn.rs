//! Per-connection state shared by the transports: cancellation when the
//! client goes away, the outbox for event notifications, subscriptions.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Messages queued to one client before event forwarding waits (and lags).
pub const OUTBOX: usize = 256;

/// One client connection.
#[derive(Debug)]
pub struct Conn {
    /// Cancelled when the client disconnects (cancels its waits).
    pub cancel: CancellationToken,
    /// Where notifications go; `None` for one-shot HTTP requests.
    pub outbox: Option<mpsc::Sender<Value>>,
    /// The connection's background tasks (event forwarders).
    pub tracker: TaskTracker,
    subs: Mutex<HashMap<String, CancellationToken>>,
    next_sub: AtomicU64,
}

impl Conn {
    /// A connection that can receive notifications through `outbox`.
    pub fn new(cancel: CancellationToken, outbox: Option<mpsc::Sender<Value>>) -> Self {
        Conn {
            cancel,
            outbox,
            tracker: TaskTracker::new(),
            subs: Mutex::new(HashMap::new()),
            next_sub: AtomicU64::new(1),
        }
    }

    /// Registers a subscription; returns its id and the token that ends it.
    pub fn add_subscription(&self) -> (String, CancellationToken) {
        let id = format!("sub{}", self.next_sub.fetch_add(1, Ordering::Relaxed));
        let token = self.cancel.child_token();
        self.subs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), token.clone());
        (id, token)
    }

    /// Ends a subscription; false when there is no such id.
    pub fn remove_subscription(&self, id: &str) -> bool {
        match self
            .subs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
        {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
    }

    /// Whether any subscription is live (an idle connection with one is not idle).
    pub fn has_subscriptions(&self) -> bool {
        !self
            .subs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }
}
