//! What every transport does with a message: parse it, run it for the
//! caller, render and answer it, count it. Transports only move bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tracing::{Instrument, debug};

use super::error::ApiError;
use super::{jsonrpc, methods, render};
use crate::metrics;
use crate::service::{Caller, Outbox, Service};

/// Messages queued to one client before event forwarding waits (and lags).
/// Small: the event bus keeps [`crate::events::EVENT_BUFFER`] events for
/// every subscriber already, so a deeper queue per connection would only
/// hold more rendered copies (64 subscribers × 256 scan events were 19 MB).
pub const OUTBOX: usize = 16;

/// The outbox of a long-lived connection whose messages go to `tx`:
/// notifications are rendered as JSON-RPC.
pub fn outbox(tx: mpsc::Sender<Value>) -> Outbox {
    Outbox::new(tx, render::notice)
}

/// Parses, executes and renders one request (shared by every transport),
/// counting it in `ybpos_api_requests_total`.
pub async fn dispatch(
    service: &Service,
    method: &str,
    params: &Map<String, Value>,
    caller: &Caller,
) -> Result<Value, ApiError> {
    let r = match methods::parse(method, params) {
        Ok(call) => service
            .execute(call, caller)
            .await
            .map(render::answer)
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    let outcome = match &r {
        Ok(_) => "ok",
        Err(e) => e.kind(),
    };
    // Only known methods become labels: clients choose method names.
    let label = match &r {
        Err(e) if e.kind() == "method_not_found" => "unknown",
        _ => method,
    };
    metrics::global().api_requests.inc(&[label, outcome]);
    r
}

/// Counts a message that could not be parsed as a request.
pub fn count_invalid(e: &ApiError) {
    metrics::global().api_requests.inc(&["invalid", e.kind()]);
}

/// Handles one message of a long-lived connection (Unix socket line or
/// WebSocket text frame). A bad message returns its error answer, for the
/// caller to send; a request runs on the connection's tracker, concurrently
/// with the others, and its answer (if it has an id) goes to `out`.
/// `inflight` counts running requests (an idle connection with one is not idle).
#[must_use = "a bad message's answer must be sent"]
pub fn handle_message(
    service: &Arc<Service>,
    caller: &Arc<Caller>,
    bytes: &[u8],
    out: &mpsc::Sender<Value>,
    inflight: &Arc<AtomicUsize>,
) -> Option<Value> {
    let req = match jsonrpc::parse(bytes) {
        Ok(r) => r,
        Err(bad) => {
            let (id, e) = *bad;
            debug!(error = %e, "Bad request.");
            count_invalid(&e);
            return Some(jsonrpc::error(&id, &e));
        }
    };
    let service = Arc::clone(service);
    let caller2 = Arc::clone(caller);
    let out = out.clone();
    let inflight2 = Arc::clone(inflight);
    inflight.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("rpc", method = %req.method);
    caller.tracker.spawn(
        async move {
            let answer = dispatch(&service, req.method.as_str(), &req.params, &caller2).await;
            if let Some(id) = req.id {
                let msg = match answer {
                    Ok(v) => jsonrpc::result(&id, v),
                    Err(e) => jsonrpc::error(&id, &e),
                };
                let _ = out.send(msg).await;
            }
            inflight2.fetch_sub(1, Ordering::Relaxed);
        }
        .instrument(span),
    );
    None
}
