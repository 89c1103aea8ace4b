//! Who a call comes from: the transport's connection as the service sees
//! it — when it goes away ([`Caller::cancel`]), where its event
//! notifications go ([`Outbox`]) and its subscriptions.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::events::Event;

/// Something a subscription delivers.
#[derive(Debug, Clone, Copy)]
pub enum Notice<'a> {
    /// An event of a subscribed topic.
    Event(&'a Event),
    /// The subscriber fell behind and missed this many events.
    Lagged(u64),
}

/// Turns a subscription's notice into the transport's message.
pub type Render = fn(subscription: &str, notice: Notice<'_>) -> Value;

/// Where a connection's notifications go; the transport renders them.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Value>,
    render: Render,
}

impl Outbox {
    /// Notifications rendered with `render` into the connection's queue `tx`.
    pub fn new(tx: mpsc::Sender<Value>, render: Render) -> Self {
        Outbox { tx, render }
    }

    /// Queues a notice (waits while the queue is full); false when the
    /// connection is gone.
    pub async fn send(&self, subscription: &str, notice: Notice<'_>) -> bool {
        let msg = (self.render)(subscription, notice);
        self.tx.send(msg).await.is_ok()
    }
}

/// One client connection, as the service sees it.
#[derive(Debug)]
pub struct Caller {
    /// Cancelled when the client disconnects (cancels its waits).
    pub cancel: CancellationToken,
    /// Where notifications go; `None` for one-shot HTTP requests.
    pub outbox: Option<Outbox>,
    /// The connection's background tasks (event forwarders).
    pub tracker: TaskTracker,
    subs: Mutex<HashMap<String, CancellationToken>>,
    next_sub: AtomicU64,
}

impl Caller {
    /// A caller that can receive notifications through `outbox`.
    pub fn new(cancel: CancellationToken, outbox: Option<Outbox>) -> Self {
        Caller {
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
