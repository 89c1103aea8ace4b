//! The event bus behind `events.subscribe`: topics `scan`, `scanner`, `txn`, `gateway`.
//!
//! A bounded broadcast: a subscriber that cannot keep up loses events, not
//! memory, and is told how many with one `lagged` event.

use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::broadcast;

/// How many events are kept for slow subscribers before they lag.
pub const EVENT_BUFFER: usize = 1024;

/// One event: a topic and its fields.
#[derive(Debug, Clone)]
pub struct Event {
    /// `scan`, `scanner`, `txn` or `gateway`.
    pub topic: &'static str,
    /// The event's fields (without `topic`).
    pub fields: Map<String, Value>,
}

impl Event {
    /// The notification params: `{"topic": …, …fields}`.
    pub fn params(&self) -> Value {
        let mut m = Map::with_capacity(self.fields.len() + 1);
        m.insert("topic".into(), Value::String(self.topic.into()));
        m.extend(self.fields.clone());
        Value::Object(m)
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
    pub fn publish(&self, topic: &'static str, fields: Value) {
        let fields = match fields {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let _ = self.tx.send(Arc::new(Event { topic, fields }));
    }

    /// A new receiver.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }
}
