//! The Unix-socket transport: newline-delimited JSON-RPC 2.0.
//!
//! - The socket is created with mode 0660 and the configured group, before
//!   the daemon reports ready; peers may be limited to a uid allow-list
//!   (`SO_PEERCRED`).
//! - A line is at most `max_request_bytes`; an over-long line is answered
//!   with `invalid_request` and the connection closed, without buffering it.
//! - Requests on one connection run concurrently (a long `scan.wait` does
//!   not block `system.info`); answers carry the request's id.
//! - At most `max_connections`; idle connections close after `idle_timeout`.
//! - Limits, and the uid allow-list, are read from the live `[api]` settings
//!   when a connection is accepted, so a reload applies to new connections
//!   and leaves open ones alone.
//! - The accept loop answers health probes ([`crate::health`]).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, FramedRead};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, warn};
use ybpos_config::Api;

use super::dispatch::{self, OUTBOX};
use super::error::ApiError;
use super::jsonrpc;
use super::live::{LiveApi, Slots};
use crate::health::{self, ProbeRx};
use crate::metrics;
use crate::service::{Caller, Service};

/// Binding the socket failed.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Another daemon answers on the socket.
    #[error("{0} is in use by another running daemon")]
    InUse(PathBuf),
    /// Filesystem or permission problem.
    #[error("cannot create API socket {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Binds the socket: removes a stale one, creates folders, sets mode and group.
pub fn bind(cfg: &Api) -> Result<UnixListener, BindError> {
    let path = &cfg.socket;
    let io = |source| BindError::Io {
        path: path.clone(),
        source,
    };
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(BindError::InUse(path.clone()));
        }
        std::fs::remove_file(path).map_err(io)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io)?;
    if let Some(group) = &cfg.socket_group {
        match nix::unistd::Group::from_name(group) {
            // Already the daemon's group (the systemd unit's case): no chown,
            // which the unit's system-call filter (~@privileged) refuses.
            Ok(Some(g)) if std::fs::metadata(path).map_err(io)?.gid() == g.gid.as_raw() => {}
            Ok(Some(g)) => {
                nix::unistd::chown(path.as_path(), None, Some(g.gid)).map_err(|e| io(e.into()))?;
            }
            Ok(None) => {
                warn!(group = %group, "api.socket_group does not exist; the socket keeps the daemon's group.")
            }
            Err(e) => warn!(group = %group, error = %e, "Cannot look up api.socket_group."),
        }
    }
    Ok(listener)
}

/// Serves connections until `cancel` fires, with the `[api]` settings of
/// each connection's moment; answers health `probes` between accepts.
pub async fn serve(
    listener: UnixListener,
    api: LiveApi,
    service: Arc<Service>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    mut probes: ProbeRx,
) {
    let slots = Slots::default();
    let conn_ids = AtomicUsize::new(0);
    loop {
        let (stream, _) = tokio::select! {
            _ = cancel.cancelled() => break,
            Some(reply) = probes.recv() => {
                health::answer(reply);
                continue;
            }
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "Accept failed.");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let cfg = Arc::clone(&api.borrow());
        let n = conn_ids.fetch_add(1, Ordering::Relaxed);
        let cred = stream.peer_cred().ok();
        let (uid, pid) = (cred.map(|c| c.uid()), cred.and_then(|c| c.pid()));
        let span = tracing::info_span!(
            "api_conn",
            conn = n,
            transport = "unix",
            peer_uid = uid,
            peer_pid = pid
        );
        let Some(permit) = slots.try_take(cfg.max_connections) else {
            metrics::global().api_refused.inc(&["unix", "overloaded"]);
            tracker.spawn(
                refuse(stream, ApiError::overloaded("too many connections")).instrument(span),
            );
            continue;
        };
        if !cfg.allowed_uids.is_empty() && !uid.is_some_and(|u| cfg.allowed_uids.contains(&u)) {
            metrics::global().api_refused.inc(&["unix", "uid"]);
            let _g = span.enter();
            warn!(
                uid = uid.map(i64::from).unwrap_or(-1),
                "Connection refused: the peer's uid is not in api.allowed_uids."
            );
            drop(_g);
            tracker.spawn(
                refuse(
                    stream,
                    ApiError::new(
                        4001,
                        "unauthorized",
                        "this user may not use the ybpos API (api.allowed_uids)",
                        serde_json::json!({"reason": "uid"}),
                    ),
                )
                .instrument(span),
            );
            continue;
        }
        let service = Arc::clone(&service);
        let cancel = cancel.child_token();
        tracker.spawn(
            async move {
                debug!("Client connected.");
                let m = metrics::global();
                m.api_connections.inc(&["unix"]);
                m.api_connections_open.add(&["unix"], 1);
                connection(stream, &cfg, service, cancel).await;
                m.api_connections_open.add(&["unix"], -1);
                debug!("Client disconnected.");
                drop(permit);
            }
            .instrument(span),
        );
    }
}

async fn refuse(mut stream: UnixStream, e: ApiError) {
    info!(reason = %e, "Connection refused.");
    let mut line = jsonrpc::error(&Value::Null, &e).to_string();
    line.push('\n');
    let _ = stream.write_all(line.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn connection(
    stream: UnixStream,
    cfg: &Api,
    service: Arc<Service>,
    cancel: CancellationToken,
) {
    let (rd, mut wr) = stream.into_split();
    let (out_tx, mut out_rx) = mpsc::channel::<Value>(OUTBOX);
    let caller = Arc::new(Caller::new(
        cancel.clone(),
        Some(dispatch::outbox(out_tx.clone())),
    ));
    let writer_cancel = cancel.clone();
    let writer = tokio::spawn(async move {
        while let Some(v) = out_rx.recv().await {
            let mut line = v.to_string();
            line.push('\n');
            if wr.write_all(line.as_bytes()).await.is_err() {
                writer_cancel.cancel();
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let codec =
        AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), Vec::new(), cfg.max_request_bytes);
    let mut lines = FramedRead::new(rd, codec);
    let inflight = Arc::new(AtomicUsize::new(0));
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => break,
            n = tokio::time::timeout(cfg.idle_timeout, lines.next()) => n,
        };
        let frame = match next {
            Err(_idle) => {
                if inflight.load(Ordering::Relaxed) == 0 && !caller.has_subscriptions() {
                    info!("Idle connection closed.");
                    break;
                }
                continue;
            }
            Ok(None) => break,
            Ok(Some(Err(AnyDelimiterCodecError::MaxChunkLengthExceeded))) => {
                let e = ApiError::invalid_request(format!(
                    "request line is longer than {} bytes; connection closed",
                    cfg.max_request_bytes
                ));
                warn!("Over-long request line; connection closed.");
                let _ = out_tx.send(jsonrpc::error(&Value::Null, &e)).await;
                break;
            }
            Ok(Some(Err(e))) => {
                debug!(error = %e, "Read failed.");
                break;
            }
            Ok(Some(Ok(bytes))) => bytes,
        };
        let line = trim_line(&frame);
        if line.is_empty() {
            continue;
        }
        if let Some(bad) = dispatch::handle_message(&service, &caller, line, &out_tx, &inflight) {
            let _ = out_tx.send(bad).await;
        }
    }
    // The client is gone (or we close): cancel its waits and subscriptions.
    cancel.cancel();
    caller.tracker.close();
    caller.tracker.wait().await;
    drop(out_tx);
    drop(caller);
    let _ = writer.await;
}

fn trim_line(b: &[u8]) -> &[u8] {
    let b = b.strip_suffix(b"\r").unwrap_or(b);
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    &b[start..]
}

/// Removes the socket file on shutdown (only if it is still ours).
pub fn unlink(path: &Path) {
    let _ = std::fs::remove_file(path);
}
