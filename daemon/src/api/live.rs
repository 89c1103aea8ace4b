//! What the transports share and a reload changes while they run: the
//! current `[api]` settings ([`LiveApi`]) and connection caps that follow
//! them ([`Slots`]).
//!
//! A reload publishes new settings; each new connection takes the settings
//! of its moment, and connections already open keep theirs, so a reload
//! never drops one. Lowering `max_connections` refuses new connections
//! until enough old ones have closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;
use ybpos_config::Api;

/// The current `[api]` settings, replaced on reload.
pub type LiveApi = watch::Receiver<Arc<Api>>;

/// A `[api]` settings channel: the sender for the reloader, the receiver for
/// the transports.
pub fn channel(api: Api) -> (watch::Sender<Arc<Api>>, LiveApi) {
    watch::channel(Arc::new(api))
}

/// Counts open connections against a cap that may change.
#[derive(Debug, Clone, Default)]
pub struct Slots(Arc<AtomicUsize>);

/// One connection's place; freed on drop.
#[derive(Debug)]
pub struct Permit(Arc<AtomicUsize>);

impl Slots {
    /// A place when fewer than `max` are taken.
    pub fn try_take(&self, max: usize) -> Option<Permit> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Permit(Arc::clone(&self.0)))
    }

    /// Places taken now.
    pub fn taken(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lower_cap_keeps_open_places_and_refuses_new_ones() {
        let s = Slots::default();
        let a = s.try_take(2).unwrap();
        let _b = s.try_take(2).unwrap();
        assert!(s.try_take(2).is_none());
        assert!(s.try_take(1).is_none(), "lowered cap: both stay open");
        drop(a);
        assert!(s.try_take(1).is_none());
        let _c = s.try_take(3).expect("a raised cap has room");
        assert_eq!(s.taken(), 2);
    }
}
