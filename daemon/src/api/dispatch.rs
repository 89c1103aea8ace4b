//! What every transport does with a message: parse it, run it on the
//! connection, answer it, count it. Transports only move bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tracing::{Instrument, debug};

use super::conn::Conn;
use super::error::ApiError;
use super::{jsonrpc, methods};
use crate::metrics;
use crate::service::Service;

/// Parses and executes one request (shared by every transport), counting it
/// in `ybpos_api_requests_total`.
pub async fn dispatch(
    service: &Service,
    method: &str,
    params: &Map<String, Value>,
    conn: &Arc<Conn>,
) -> Result<Value, ApiError> {
    let r = match methods::parse(method, params) {
        Ok(call) => service.execute(call, conn).await,
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
    conn: &Arc<Conn>,
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
    let conn2 = Arc::clone(conn);
    let out = out.clone();
    let inflight2 = Arc::clone(inflight);
    inflight.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("rpc", method = %req.method);
    conn.tracker.spawn(
        async move {
            let answer = dispatch(&service, req.method.as_str(), &req.params, &conn2).await;
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
