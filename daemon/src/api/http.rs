//! The loopback HTTP + WebSocket transport (local-api.md, Transports 2), for
//! browser-based HIS.
//!
//! - `POST /v1/rpc`: the body is one JSON-RPC request; the response body is
//!   its answer, always with status 200 (errors are JSON-RPC errors). A
//!   notification (no `id`) runs to its end and gets `204 No Content`.
//!   `events.subscribe` needs a long-lived connection and is answered with
//!   `invalid_request`.
//! - `GET /v1/ws`: a WebSocket; each text frame is one JSON-RPC message and
//!   events arrive as notifications, exactly as on the Unix socket. A client
//!   that disconnects cancels its waits.
//! - `GET /healthz` (no token): `200 {"status":"ok", "gateway":…, "scanners":…}`
//!   while the daemon's core answers (the journal thread, the scan hub and
//!   the API loop: [`crate::health`], the watchdog's check);
//!   `503 {"status":"unavailable","reason":…}` while shutting down or when
//!   the core does not answer within [`HEALTH_DEADLINE`]. A gateway that is offline or a scanner that is
//!   unplugged does not make it 503: the daemon is then working as designed
//!   (retrying, waiting), restarting it would not help, and a supervisor that
//!   restarts on 503 would only drop the journal's in-flight reversals. Those
//!   states are in the body and in `/metrics` (`ybpos_gateway_online`,
//!   `ybpos_scanner_connected`) for alerting.
//! - `GET /metrics`: Prometheus text ([`crate::metrics`]).
//!
//! Every request is checked in this order (see [`super::guard`]): `Host`
//! (403), `Origin` (403), then the token (401) on everything but `/healthz`
//! and CORS preflights (`OPTIONS`, which browsers send without credentials).
//! Responses to allowed origins carry CORS headers, including Chrome's
//! `Access-Control-Allow-Private-Network`.
//!
//! Limits: a body is at most `api.max_request_bytes` (larger: 413 with an
//! `invalid_request` body, read no further), as is a WebSocket message
//! (larger: an `invalid_request` answer and close code 1009). At most
//! `api.max_connections` TCP connections (WebSocket sessions included);
//! past that the connection gets a `503` with an `overloaded` JSON-RPC
//! error and is closed (beyond [`MAX_POLITE_REFUSALS`] at once, just
//! closed). Idle keep-alive connections close after
//! `min(api.idle_timeout, 30 s)`; a WebSocket with no message, no request in
//! flight and no subscription for `api.idle_timeout` is closed (code 1000).
//! Slow WebSocket subscribers lose events (`lagged`), not memory: the
//! outbox is bounded as on the Unix socket.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;
use tracing::{Instrument, debug, info, warn};
use ybpos_config::Api;

use super::dispatch::{OUTBOX, count_invalid, dispatch, handle_message, outbox};
use super::error::ApiError;
use super::guard::{Guard, Refusal, Token};
use super::jsonrpc;
use super::live::{LiveApi, Permit, Slots};
use super::token::{self, TokenFileError};
use crate::health::Health;
use crate::metrics;
use crate::service::{Caller, Service};
use scanner_drivers::ScannerState;

/// How long `/healthz` waits for the core before answering 503.
pub const HEALTH_DEADLINE: Duration = Duration::from_secs(2);
/// Longest time to receive a request body.
pub const BODY_DEADLINE: Duration = Duration::from_secs(30);
/// Longest wait to deliver a last answer or the close frame to a closing WebSocket.
pub const SEND_DEADLINE: Duration = Duration::from_secs(1);
/// Initial WebSocket read buffer per session.
pub const WS_READ_BUFFER: usize = 4096;
/// Connections past the cap answered `503` at the same time; more are just closed.
pub const MAX_POLITE_REFUSALS: usize = 32;
/// Longest wait for request headers (and idle keep-alive), at most `idle_timeout`.
pub const HEADER_DEADLINE: Duration = Duration::from_secs(30);

/// Starting the HTTP transport failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The token file cannot be used.
    #[error(transparent)]
    Token(#[from] TokenFileError),
    /// The address cannot be bound.
    #[error("cannot listen on api.http_listen = {addr}: {cause}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause (named so it is printed once, in the message).
        cause: std::io::Error,
    },
    /// No randomness for the token check.
    #[error("no system randomness for the API token check")]
    Random,
}

/// A bound HTTP listener with its token, ready to serve.
#[derive(Debug)]
pub struct HttpListener {
    listener: TcpListener,
    local: SocketAddr,
    guard: Arc<Guard>,
    token_file: PathBuf,
}

impl HttpListener {
    /// Reads (or creates) the token file and binds `api.http_listen`;
    /// `None` when HTTP is disabled.
    pub async fn bind(cfg: &Api) -> Result<Option<HttpListener>, HttpError> {
        let Some(addr) = cfg.http_listen else {
            return Ok(None);
        };
        let (secret, _created) =
            token::load_or_create(&cfg.token_file, cfg.socket_group.as_deref())?;
        let token = Token::new(&secret).map_err(|_| HttpError::Random)?;
        drop(secret);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|cause| HttpError::Bind { addr, cause })?;
        let local = listener
            .local_addr()
            .map_err(|cause| HttpError::Bind { addr, cause })?;
        if !local.ip().is_loopback() {
            warn!(addr = %local, "The HTTP API listens on a non-loopback address (api.http_allow_non_loopback).");
        }
        Ok(Some(HttpListener {
            listener,
            local,
            guard: Arc::new(Guard::new(local, &cfg.allowed_origins, token)),
            token_file: cfg.token_file.clone(),
        }))
    }

    /// The bound address (the real port when `http_listen` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The token file clients read the token from.
    pub fn token_file(&self) -> &std::path::Path {
        &self.token_file
    }

    /// Serves connections until `cancel` fires; connections and WebSocket
    /// sessions run on `tracker`. Limits are read from the live `[api]`
    /// settings for each new connection; a change of `allowed_origins`
    /// applies to the next request.
    pub async fn serve(
        self,
        mut api: LiveApi,
        health: Arc<Health>,
        service: Arc<Service>,
        cancel: CancellationToken,
        tracker: TaskTracker,
    ) {
        let slots = Slots::default();
        // Refusals answer politely, but only so many at once: past that, a
        // flood of connections is just closed.
        let refusals = Arc::new(Semaphore::new(MAX_POLITE_REFUSALS));
        let shared = Shared(Arc::new(Inner {
            service,
            guard: Arc::clone(&self.guard),
            api: api.clone(),
            health,
            cancel: cancel.clone(),
            tracker: tracker.clone(),
            probing: Arc::new(AtomicBool::new(false)),
        }));
        let app = router(shared);
        let mut n = 0u64;
        loop {
            let (stream, peer) = tokio::select! {
                _ = cancel.cancelled() => break,
                Ok(()) = api.changed() => {
                    self.guard.set_origins(&api.borrow_and_update().allowed_origins);
                    continue;
                }
                r = self.listener.accept() => match r {
                    Ok(s) => s,
                    Err(e) => {
                        warn!(error = %e, "HTTP accept failed.");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            n += 1;
            let _ = stream.set_nodelay(true);
            let span = tracing::info_span!("api_conn", conn = n, transport = "http", peer = %peer);
            let cfg = Arc::clone(&api.borrow());
            let header_deadline = cfg.idle_timeout.min(HEADER_DEADLINE);
            let Some(permit) = slots.try_take(cfg.max_connections) else {
                metrics::global().api_refused.inc(&["http", "overloaded"]);
                if let Ok(p) = Arc::clone(&refusals).try_acquire_owned() {
                    tracker.spawn(
                        async move {
                            refuse_overloaded(stream).await;
                            drop(p);
                        }
                        .instrument(span),
                    );
                }
                continue;
            };
            tracker.spawn(
                connection(
                    stream,
                    app.clone(),
                    Slot(Arc::new(permit)),
                    cancel.child_token(),
                    header_deadline,
                )
                .instrument(span),
            );
        }
    }
}

/// A connection's place under `max_connections`, shared by its requests and
/// any WebSocket session it upgrades into; freed when the last one ends.
#[derive(Debug, Clone)]
struct Slot(#[allow(dead_code)] Arc<Permit>);

#[derive(Debug)]
struct Inner {
    service: Arc<Service>,
    guard: Arc<Guard>,
    api: LiveApi,
    health: Arc<Health>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    probing: Arc<AtomicBool>,
}

impl Inner {
    /// The `[api]` settings now.
    fn cfg(&self) -> Arc<Api> {
        Arc::clone(&self.api.borrow())
    }
}

#[derive(Debug, Clone)]
struct Shared(Arc<Inner>);

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/v1/rpc", post(rpc))
        .route("/v1/ws", get(ws))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), gate))
        .with_state(shared)
}

async fn connection(
    stream: TcpStream,
    app: Router,
    slot: Slot,
    cancel: CancellationToken,
    header_deadline: Duration,
) {
    let m = metrics::global();
    m.api_connections.inc(&["http"]);
    m.api_connections_open.add(&["http"], 1);
    debug!("HTTP client connected.");
    let svc = app.map_request(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(slot.clone());
        req
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_deadline)
        .keep_alive(true);
    let conn = builder
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
        .with_upgrades();
    tokio::pin!(conn);
    let r = tokio::select! {
        r = conn.as_mut() => r,
        _ = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = r {
        debug!(error = %e, "HTTP connection ended with an error.");
    }
    m.api_connections_open.add(&["http"], -1);
    debug!("HTTP client disconnected.");
}

/// Answers a connection past `max_connections` and closes it: reads the
/// request head first (HTTP clients take an answer before their request as
/// a protocol error), then a bounded amount of the rest, so closing does not
/// reset the connection before the client has read the answer.
async fn refuse_overloaded(mut stream: TcpStream) {
    info!("HTTP connection refused: too many connections.");
    let mut buf = [0u8; 4096];
    let mut head = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(n) = stream.read(&mut buf).await {
            head.extend_from_slice(&buf[..n]);
            if n == 0 || head.len() > 16 * 1024 || head.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    let body = jsonrpc::error(
        &Value::Null,
        &ApiError::overloaded("too many connections to the ybpos API; try again shortly"),
    )
    .to_string();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    if stream.write_all(head.as_bytes()).await.is_err()
        || stream.write_all(body.as_bytes()).await.is_err()
    {
        return;
    }
    let _ = stream.shutdown().await;
    let mut total = 0usize;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Ok(n) = stream.read(&mut buf).await {
            total += n;
            if n == 0 || total > 64 * 1024 {
                break;
            }
        }
    })
    .await;
}

/// One header's value when it is present exactly once and text.
fn single<'a>(h: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a HeaderValue>, ()> {
    let mut all = h.get_all(name).iter();
    match (all.next(), all.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => Ok(Some(v)),
        _ => Err(()),
    }
}

fn query_token(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|kv| kv.strip_prefix("token="))
}

/// Host, Origin, token; CORS preflights and headers.
async fn gate(State(st): State<Shared>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let transport = if path == "/v1/ws" { "ws" } else { "http" };
    let h = req.headers();
    let host = single(h, &header::HOST)
        .ok()
        .flatten()
        .and_then(|v| v.to_str().ok());
    let checked = st.0.guard.check_host(host).and_then(|()| {
        // An absolute-form target (`GET http://x/…`) names the host too.
        match req.uri().authority() {
            Some(a) => st.0.guard.check_host(Some(a.as_str())),
            None => Ok(()),
        }
    });
    if let Err(r) = checked {
        return refuse(StatusCode::FORBIDDEN, &r, transport);
    }
    let origin = match single(h, &header::ORIGIN) {
        Ok(None) => None,
        Ok(Some(v)) => match v.to_str() {
            Ok(s) => Some(s.to_string()),
            Err(_) => {
                let r = Refusal::Origin("(not text)".into());
                return refuse(StatusCode::FORBIDDEN, &r, transport);
            }
        },
        Err(()) => {
            let r = Refusal::Origin("(repeated)".into());
            return refuse(StatusCode::FORBIDDEN, &r, transport);
        }
    };
    if let Err(r) = st.0.guard.check_origin(origin.as_deref()) {
        return refuse(StatusCode::FORBIDDEN, &r, transport);
    }
    if req.method() == Method::OPTIONS {
        return preflight(origin.as_deref(), h);
    }
    if path != "/healthz" {
        let checked = match single(h, &header::AUTHORIZATION) {
            Err(()) => Err(Refusal::Token("send one Authorization header")),
            Ok(auth) => {
                let q = if path == "/v1/ws" {
                    query_token(req.uri().query())
                } else {
                    None
                };
                st.0.guard.check_token(auth.map(HeaderValue::as_bytes), q)
            }
        };
        if let Err(r) = checked {
            return refuse(StatusCode::UNAUTHORIZED, &r, transport);
        }
    }
    let mut resp = next.run(req).await;
    let rh = resp.headers_mut();
    rh.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(o) = origin.and_then(|o| HeaderValue::from_str(&o).ok()) {
        rh.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        rh.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    resp
}

/// The answer to a CORS preflight from an allowed origin (or a plain OPTIONS).
fn preflight(origin: Option<&str>, req: &HeaderMap) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::ALLOW,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    if let Some(o) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        let pna = req
            .get("access-control-request-private-network")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        if pna {
            h.insert(
                HeaderName::from_static("access-control-allow-private-network"),
                HeaderValue::from_static("true"),
            );
        }
    }
    resp
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    let mut resp = (status, v.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A refused request: the status and a JSON-RPC `unauthorized` error body.
fn refuse(status: StatusCode, r: &Refusal, transport: &'static str) -> Response {
    info!(reason = r.reason(), detail = %r, "HTTP request refused.");
    metrics::global().api_refused.inc(&[transport, r.reason()]);
    let e = ApiError::new(
        4001,
        "unauthorized",
        r.to_string(),
        json!({"reason": r.reason()}),
    );
    let mut resp = json_response(status, &jsonrpc::error(&Value::Null, &e));
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"ybpos\""),
        );
    }
    resp
}

fn too_large(max: usize) -> Response {
    info!(max, "HTTP request body too large.");
    metrics::global().api_refused.inc(&["http", "too_large"]);
    let e = ApiError::invalid_request(format!("the request body is larger than {max} bytes"));
    let mut resp = json_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        &jsonrpc::error(&Value::Null, &e),
    );
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

async fn not_found() -> Response {
    let e = ApiError::invalid_request(
        "no such path: use POST /v1/rpc, GET /v1/ws, /healthz or /metrics",
    );
    json_response(StatusCode::NOT_FOUND, &jsonrpc::error(&Value::Null, &e))
}

/// Reads the body up to `max` bytes; `Err` is the response to send instead.
async fn read_body(body: Body, declared: Option<u64>, max: usize) -> Result<Vec<u8>, Response> {
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large(max));
    }
    let mut stream = body.into_data_stream();
    let mut buf = Vec::with_capacity(declared.unwrap_or(0) as usize);
    let read = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                debug!(error = %e, "Reading the request body failed.");
                let e = ApiError::invalid_request("the request body could not be read");
                json_response(StatusCode::BAD_REQUEST, &jsonrpc::error(&Value::Null, &e))
            })?;
            if buf.len() + chunk.len() > max {
                return Err(too_large(max));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(())
    };
    match tokio::time::timeout(BODY_DEADLINE, read).await {
        Ok(Ok(())) => Ok(buf),
        Ok(Err(resp)) => Err(resp),
        Err(_) => {
            let e = ApiError::invalid_request("the request body did not arrive in time");
            Err(json_response(
                StatusCode::REQUEST_TIMEOUT,
                &jsonrpc::error(&Value::Null, &e),
            ))
        }
    }
}

/// `POST /v1/rpc`.
async fn rpc(State(st): State<Shared>, req: Request) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = match read_body(req.into_body(), declared, st.0.cfg().max_request_bytes).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let req = match jsonrpc::parse(&body) {
        Ok(r) => r,
        Err(bad) => {
            let (id, e) = *bad;
            debug!(error = %e, "Bad request.");
            count_invalid(&e);
            return json_response(StatusCode::OK, &jsonrpc::error(&id, &e));
        }
    };
    // One request, one connection-like scope: dropping this future (the
    // client went away) cancels the request's waits.
    let caller = Arc::new(Caller::new(st.0.cancel.child_token(), None));
    let _cancel_on_drop = caller.cancel.clone().drop_guard();
    let span = tracing::info_span!("rpc", method = %req.method);
    let answer = dispatch(&st.0.service, &req.method, &req.params, &caller)
        .instrument(span)
        .await;
    caller.tracker.close();
    match req.id {
        None => StatusCode::NO_CONTENT.into_response(),
        Some(id) => {
            let msg = match answer {
                Ok(v) => jsonrpc::result(&id, v),
                Err(e) => jsonrpc::error(&id, &e),
            };
            json_response(StatusCode::OK, &msg)
        }
    }
}

/// `GET /healthz`: the same core check as systemd's watchdog
/// ([`crate::health`]).
async fn healthz(State(st): State<Shared>) -> Response {
    let unavailable = |reason: &str| {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "unavailable", "reason": reason}),
        )
    };
    if st.0.cancel.is_cancelled() {
        return unavailable("the daemon is shutting down");
    }
    // One probe at a time: a core that hangs holds one probe, not many.
    if st.0.probing.swap(true, Ordering::AcqRel) {
        return unavailable("the previous health probe is still waiting for the daemon's core");
    }
    let r = st.0.health.check(HEALTH_DEADLINE).await;
    st.0.probing.store(false, Ordering::Release);
    match r {
        Ok(core) => json_response(
            StatusCode::OK,
            &json!({
                "status": "ok",
                "version": env!("CARGO_PKG_VERSION"),
                "gateway": core.gateway,
                "scanners": {
                    "configured": core.scanners,
                    "connected": core.scanners - core.not_connected.len(),
                },
                "journal": {
                    "unresolved": core.journal.unresolved,
                    "reversal_failed": core.journal.reversal_failed,
                },
            }),
        ),
        Err(stuck) => {
            warn!(reason = %stuck, "The daemon's core did not answer the health probe in time.");
            unavailable(&stuck.to_string())
        }
    }
}

/// `GET /metrics`.
async fn metrics_text(State(st): State<Shared>) -> Response {
    let service = Arc::clone(&st.0.service);
    // Hooks may read files or the journal: off the runtime.
    let text = tokio::task::spawn_blocking(move || {
        let m = metrics::global();
        let online = matches!(
            *service.gateway.state().borrow(),
            settlement_client::LinkState::Online { .. }
        );
        m.gateway_online.set(&[], i64::from(online));
        for s in service.hub.list() {
            m.scanner_connected
                .set(&[&s.id], i64::from(s.state == ScannerState::Connected));
        }
        m.render()
    })
    .await;
    match text {
        Ok(t) => {
            let mut resp = (StatusCode::OK, t).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            resp
        }
        Err(e) => {
            warn!(error = %e, "Rendering metrics failed.");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `GET /v1/ws`.
async fn ws(
    State(st): State<Shared>,
    Extension(slot): Extension<Slot>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let max = st.0.cfg().max_request_bytes;
    let span = tracing::Span::current();
    let tracker = st.0.tracker.clone();
    upgrade
        .max_message_size(max)
        .max_frame_size(max)
        // tungstenite preallocates its read buffer (128 KiB by default) per
        // connection; messages here are small, and it grows when one is not.
        .read_buffer_size(WS_READ_BUFFER)
        .on_failed_upgrade(|e| debug!(error = %e, "WebSocket upgrade failed."))
        .on_upgrade(move |socket| tracker.track_future(session(socket, st, slot).instrument(span)))
}

/// How a WebSocket session ends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    /// The client closed or vanished: nothing to send.
    Gone,
    /// Idle: 1000.
    Idle,
    /// Daemon stopping: 1001.
    GoingAway,
    /// Message too big: 1009.
    TooBig,
}

/// One WebSocket session: the same loop as a Unix-socket connection.
async fn session(mut socket: WebSocket, st: Shared, slot: Slot) {
    let m = metrics::global();
    m.api_connections.inc(&["ws"]);
    m.api_connections_open.add(&["ws"], 1);
    debug!("WebSocket session started.");
    let cfg = st.0.cfg();
    let cancel = st.0.cancel.child_token();
    let (out_tx, mut out_rx) = mpsc::channel::<Value>(OUTBOX);
    let caller = Arc::new(Caller::new(cancel.clone(), Some(outbox(out_tx.clone()))));
    let inflight = Arc::new(AtomicUsize::new(0));
    let idle = tokio::time::sleep(cfg.idle_timeout);
    tokio::pin!(idle);
    let too_big = |max: usize| {
        let e = ApiError::invalid_request(format!(
            "message is longer than {max} bytes; connection closed"
        ));
        count_invalid(&e);
        jsonrpc::error(&Value::Null, &e)
    };
    // One loop reads, writes and watches the clock; every answer produced
    // here is sent directly (never queued to the outbox this loop drains).
    let end = loop {
        let msg = tokio::select! {
            _ = cancel.cancelled() => break End::GoingAway,
            _ = idle.as_mut() => {
                if inflight.load(Ordering::Relaxed) == 0 && !caller.has_subscriptions() {
                    info!("Idle WebSocket closed.");
                    break End::Idle;
                }
                idle.as_mut().reset(tokio::time::Instant::now() + cfg.idle_timeout);
                continue;
            }
            Some(v) = out_rx.recv() => v,
            msg = socket.recv() => {
                idle.as_mut().reset(tokio::time::Instant::now() + cfg.idle_timeout);
                match msg {
                    None | Some(Ok(Message::Close(_))) => break End::Gone,
                    Some(Ok(Message::Text(t))) => {
                        match handle_message(&st.0.service, &caller, t.as_bytes(), &out_tx, &inflight) {
                            Some(bad) => bad,
                            None => continue,
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let e = ApiError::invalid_request("send JSON-RPC messages as text frames");
                        count_invalid(&e);
                        jsonrpc::error(&Value::Null, &e)
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Err(e)) if is_too_big(&e) => {
                        warn!(max = cfg.max_request_bytes, "Over-long WebSocket message; session closed.");
                        let _ = send(&mut socket, &too_big(cfg.max_request_bytes)).await;
                        break End::TooBig;
                    }
                    Some(Err(e)) => {
                        debug!(error = %e, "WebSocket read failed.");
                        break End::Gone;
                    }
                }
            }
        };
        // A client that does not read blocks only itself, until it goes or we stop.
        tokio::select! {
            r = send(&mut socket, &msg) => if r.is_err() { break End::Gone },
            _ = cancel.cancelled() => break End::Gone,
        }
    };
    // Cancel the client's waits and subscriptions; deliver what they still
    // answer while the socket lasts, then close.
    cancel.cancel();
    caller.tracker.close();
    drop(out_tx);
    let mut open = end != End::Gone;
    loop {
        let v = tokio::select! {
            _ = caller.tracker.wait() => break,
            Some(v) = out_rx.recv() => v,
        };
        if open {
            open = deliver(&mut socket, &v).await;
        }
    }
    while let Ok(v) = out_rx.try_recv() {
        if open {
            open = deliver(&mut socket, &v).await;
        }
    }
    drop(caller);
    if open {
        let (code, reason) = match end {
            End::Idle => (1000, "idle"),
            End::GoingAway => (1001, "the daemon is stopping"),
            End::TooBig => (1009, "message too big"),
            End::Gone => (1000, ""),
        };
        let close = Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }));
        let _ = tokio::time::timeout(SEND_DEADLINE, socket.send(close)).await;
    }
    m.api_connections_open.add(&["ws"], -1);
    drop(slot);
    debug!("WebSocket session ended.");
}

async fn send(socket: &mut WebSocket, v: &Value) -> Result<(), axum::Error> {
    socket.send(Message::Text(v.to_string().into())).await
}

/// Sends while closing, within [`SEND_DEADLINE`]; false when the client is gone.
async fn deliver(socket: &mut WebSocket, v: &Value) -> bool {
    matches!(
        tokio::time::timeout(SEND_DEADLINE, send(socket, v)).await,
        Ok(Ok(()))
    )
}

fn is_too_big(e: &axum::Error) -> bool {
    use std::error::Error as _;
    e.source()
        .and_then(|s| s.downcast_ref::<tungstenite::Error>())
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)))
}
