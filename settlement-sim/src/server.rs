//! The simulator's HTTP face: the three transport profiles, auth checks,
//! fault injection, optional TLS, and the control API (`/sim/...`) used by
//! tests, the demo and HIS vendors (settlement-sim/SIMULATOR.md).
//!
//! Routes (base `http://HOST:PORT/fsi/api`):
//! - `POST /fsi/api/{service}/{method}` — `fsi-paths` profile;
//! - `POST /fsi/api/{infno}` — `infno-in-url` profile;
//! - `POST /fsi/api/callService` — `single-endpoint` profile (infno in the body);
//! - `GET /sim/people`, `POST /sim/codes`, `GET /sim/ledger`,
//!   `GET|POST|DELETE /sim/faults`, `GET /sim/traffic` — control API.
//!
//! Connections are served by our own accept loop (hyper, HTTP/1.1) so a
//! fault can reset one connection mid-request.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response as AxResponse};
use axum::routing::{get, post};
use chrono::Local;
use serde_json::{Value, json};
use settlement_client::auth::Signer;
use settlement_client::catalogue;
use settlement_client::envelope::{Request, Response};
use settlement_client::redact::Masked;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use crate::faults::{FaultKind, FaultRule, Faults, FiredFault};
use crate::ledger::Ledger;
use crate::state::{IssuedCode, SimSettings, State};

/// Largest request body the simulator reads.
const MAX_BODY: usize = 4 << 20;

/// A simulated settlement gateway.
#[derive(Debug, Clone)]
pub struct Simulator {
    state: Arc<Mutex<State>>,
    verifier: Arc<Signer>,
    faults: Arc<Mutex<Faults>>,
    traffic: Arc<Mutex<BTreeMap<String, usize>>>,
    /// The last request body of each infno (tests read envelopes with it).
    last: Arc<Mutex<BTreeMap<String, Value>>>,
    /// Requests being served now and at most, per infno.
    in_flight: Arc<Mutex<BTreeMap<String, (usize, usize)>>>,
}

/// Counts a request as in flight until dropped.
struct InFlight {
    map: Arc<Mutex<BTreeMap<String, (usize, usize)>>>,
    infno: String,
}

impl InFlight {
    fn new(map: &Arc<Mutex<BTreeMap<String, (usize, usize)>>>, infno: &str) -> Self {
        let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
        let e = m.entry(infno.to_string()).or_default();
        e.0 += 1;
        e.1 = e.1.max(e.0);
        InFlight {
            map: Arc::clone(map),
            infno: infno.to_string(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = m.get_mut(&self.infno) {
            e.0 = e.0.saturating_sub(1);
        }
    }
}

/// A simulator serving on a socket.
#[derive(Debug)]
pub struct RunningSim {
    /// The bound address.
    pub addr: SocketAddr,
    /// The simulator (for issuing codes and reading state in-process).
    pub sim: Simulator,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl RunningSim {
    /// The base URL for the `fsi-paths` and `infno-in-url` profiles.
    pub fn base_url(&self) -> String {
        format!("{}://{}/fsi/api", self.scheme(), self.addr)
    }

    /// The URL for the `single-endpoint` profile.
    pub fn single_endpoint_url(&self) -> String {
        format!("{}://{}/fsi/api/callService", self.scheme(), self.addr)
    }

    /// `http://HOST:PORT` or `https://HOST:PORT` (the control API lives under `/sim`).
    pub fn root_url(&self) -> String {
        format!("{}://{}", self.scheme(), self.addr)
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Stops serving (open connections are closed).
    pub async fn shutdown(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }

    /// Stops listening, as a gateway that is down: open connections are
    /// closed and new ones are refused until [`RunningSim::resume`]. The
    /// state (books, faults, codes) is kept.
    pub async fn pause(&mut self) {
        self.cancel.cancel();
        let _ = (&mut self.task).await;
    }

    /// Listens again on the same address after [`RunningSim::pause`].
    pub async fn resume(&mut self) -> std::io::Result<()> {
        if !self.cancel.is_cancelled() {
            return Ok(());
        }
        let listener = tokio::net::TcpListener::bind(self.addr).await?;
        self.cancel = CancellationToken::new();
        self.task = tokio::spawn(accept_loop(
            listener,
            self.sim.router(),
            self.tls.clone().map(tokio_rustls::TlsAcceptor::from),
            self.cancel.clone(),
        ));
        Ok(())
    }
}

/// A freshly issued test code.
#[derive(Debug, Clone)]
pub struct TestCode {
    /// The 医保码 text a scanner would read.
    pub code: String,
    /// Whose it is.
    pub psn_no: String,
    /// Until when it decodes.
    pub issued: IssuedCode,
}

/// Lets a handler reset the connection it is served on.
#[derive(Debug, Clone)]
struct ConnAbort(CancellationToken);

/// Builds a TLS server config (ring provider) from PEM certificate chain and key.
pub fn tls_config_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in the PEM".into());
    }
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("private key PEM: {e}"))?;
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| e.to_string())?;
    Ok(Arc::new(cfg))
}

impl Simulator {
    /// A simulator with the built-in people; `verifier` checks request auth.
    pub fn new(settings: SimSettings, verifier: Signer) -> Self {
        Simulator {
            state: Arc::new(Mutex::new(State::new(settings))),
            verifier: Arc::new(verifier),
            faults: Arc::new(Mutex::new(Faults::default())),
            traffic: Arc::new(Mutex::new(BTreeMap::new())),
            last: Arc::new(Mutex::new(BTreeMap::new())),
            in_flight: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn faults_lock(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the state (tests and control API).
    pub fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.lock())
    }

    /// Issues a test 医保码 for the person found by `who` (index, psn_no, certno or name).
    pub fn issue_code(&self, who: &str) -> Option<TestCode> {
        let mut s = self.lock();
        let idx = s.find_person(who)?;
        let (code, issued) = s.issue_code(idx, Local::now());
        Some(TestCode {
            code,
            psn_no: s.accounts[idx].person.psn_no.to_string(),
            issued,
        })
    }

    /// A snapshot of the books: balances, visits, settlements, reversals.
    pub fn ledger(&self) -> Ledger {
        self.lock().ledger()
    }

    /// Proves money is conserved (see [`Ledger::check`]).
    pub fn check_conservation(&self) -> Result<(), Vec<String>> {
        self.ledger().check()
    }

    /// Arms a fault; returns its id.
    pub fn add_fault(&self, rule: FaultRule) -> u64 {
        self.faults_lock().add(rule)
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        self.faults_lock().clear();
    }

    /// Faults still armed (id, rule with the remaining count).
    pub fn armed_faults(&self) -> Vec<(u64, FaultRule)> {
        self.faults_lock().armed()
    }

    /// Faults that hit calls, oldest first.
    pub fn fired_faults(&self) -> Vec<FiredFault> {
        self.faults_lock().fired().to_vec()
    }

    /// How many requests of `infno` arrived (authenticated, parsed), faulted or not.
    pub fn calls(&self, infno: &str) -> usize {
        self.traffic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(infno)
            .copied()
            .unwrap_or(0)
    }

    /// The body of the last request of `infno` that arrived (authenticated,
    /// parsed): the envelope, or decode's bare body.
    pub fn last_request(&self, infno: &str) -> Option<Value> {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(infno)
            .cloned()
    }

    /// The most requests of `infno` ever served at the same time (a client
    /// that sends them one at a time shows 1).
    pub fn max_in_flight(&self, infno: &str) -> usize {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(infno)
            .map_or(0, |e| e.1)
    }

    /// The HTTP routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/fsi/api/callService", post(single_endpoint))
            .route("/fsi/api/{seg}", post(infno_in_url))
            .route("/fsi/api/{svc}/{method}", post(fsi_path))
            .route("/sim/people", get(people))
            .route("/sim/codes", post(codes))
            .route("/sim/ledger", get(ledger))
            .route(
                "/sim/faults",
                get(faults_get).post(faults_post).delete(faults_delete),
            )
            .route("/sim/traffic", get(traffic))
            .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
            .with_state(self.clone())
    }

    /// Serves plain HTTP on `addr` (use port 0 for any free port) until shut down.
    pub async fn bind(self, addr: SocketAddr) -> std::io::Result<RunningSim> {
        self.serve(addr, None).await
    }

    /// Serves HTTPS on `addr` with `tls` (see [`tls_config_from_pem`]).
    pub async fn bind_tls(
        self,
        addr: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<RunningSim> {
        self.serve(addr, Some(tls)).await
    }

    async fn serve(
        self,
        addr: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<RunningSim> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let router = self.router();
        let c = cancel.clone();
        let acceptor = tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let task = tokio::spawn(accept_loop(listener, router, acceptor, c));
        Ok(RunningSim {
            addr,
            sim: self,
            cancel,
            task,
            tls,
        })
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
        let get = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        self.verifier
            .verify(&get, body, Local::now().timestamp(), 300)
    }

    /// Handles one POST for `route_infno` (None: take it from the body),
    /// applying an armed fault if one matches.
    async fn serve_post(
        &self,
        route_infno: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
        abort: Option<ConnAbort>,
    ) -> AxResponse {
        if let Err(e) = self.verify(headers, body) {
            tracing::info!(reason = %e, "Simulator refused a request's authentication.");
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"code": 401, "message": e})),
            )
                .into_response();
        }
        let now = Local::now();
        let value: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => {
                let r = self
                    .lock()
                    .stamp(Response::failure("FSI-请求报文不是合法的JSON"), now);
                return json_value(&serde_json::to_value(&r).unwrap_or(Value::Null));
            }
        };
        let infno = match value.get("infno").and_then(Value::as_str) {
            Some(i) => i.to_string(),
            None => route_infno.unwrap_or("1162").to_string(),
        };
        let msgid = value
            .get("msgid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        *self
            .traffic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(infno.clone())
            .or_default() += 1;
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(infno.clone(), value.clone());
        let _in_flight = InFlight::new(&self.in_flight, &infno);
        let fault = self.faults_lock().take(&infno, &msgid);
        if let Some(f) = &fault {
            tracing::info!(%infno, msgid = %Masked(&msgid), fault = ?f, "Simulator injects a fault.");
        }
        let route = route_infno.map(str::to_string);
        let out = match &fault {
            Some(FaultKind::Http5xx { status }) => {
                let code = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY);
                return (
                    code,
                    [("content-type", "text/html")],
                    format!("<html><body><h1>{code}</h1>nginx</body></html>"),
                )
                    .into_response();
            }
            Some(FaultKind::ResetBeforeCommit) => return drop_connection(abort).await,
            Some(FaultKind::MalformedBeforeCommit) => return malformed(),
            Some(FaultKind::Refuse { err_msg }) => {
                let r = self.lock().stamp(Response::failure(err_msg.clone()), now);
                return json_value(&serde_json::to_value(&r).unwrap_or(Value::Null));
            }
            Some(FaultKind::EmptyOk) => {
                let r = self.lock().stamp(Response::success(json!({})), now);
                return json_value(&serde_json::to_value(&r).unwrap_or(Value::Null));
            }
            Some(FaultKind::ResetThenLateCommit { ms }) => {
                // The client sees a reset now; the commit lands later.
                let sim = self.clone();
                let ms = *ms;
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    sim.process(route.as_deref(), value);
                });
                return drop_connection(abort).await;
            }
            Some(FaultKind::Latency { ms }) => {
                // Processed after the delay even if the client has gone.
                let sim = self.clone();
                let ms = *ms;
                let h = tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    sim.process(route.as_deref(), value)
                });
                match h.await {
                    Ok(v) => v,
                    Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                }
            }
            _ => self.process(route.as_deref(), value),
        };
        match fault {
            Some(FaultKind::CommitThenDelay { ms }) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                json_value(&out)
            }
            Some(FaultKind::CommitThenDrop) => drop_connection(abort).await,
            Some(FaultKind::MalformedAfterCommit) => malformed(),
            Some(FaultKind::CommitThenRefuse { err_msg }) => {
                let r = self.lock().stamp(Response::failure(err_msg), now);
                json_value(&serde_json::to_value(&r).unwrap_or(Value::Null))
            }
            Some(FaultKind::CommitThenStatus { status }) => {
                let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
                (
                    code,
                    [("content-type", "text/html")],
                    format!("<html><body><h1>{code}</h1>nginx</body></html>"),
                )
                    .into_response()
            }
            Some(FaultKind::CommitThenEmptyOk) => {
                let r = self.lock().stamp(Response::success(json!({})), now);
                json_value(&serde_json::to_value(&r).unwrap_or(Value::Null))
            }
            Some(FaultKind::InfcodeAsString) => {
                let mut out = out;
                if let Some(c) = out.get_mut("infcode")
                    && let Some(n) = c.as_i64()
                {
                    *c = Value::String(n.to_string());
                }
                json_value(&out)
            }
            Some(FaultKind::TruncatedAfterCommit) => truncated(out.to_string().into_bytes()),
            Some(FaultKind::GbkBody) => {
                let text = out.to_string();
                let (gbk, _, _) = encoding_rs::GBK.encode(&text);
                (
                    StatusCode::OK,
                    [("content-type", "application/json;charset=GBK")],
                    gbk.into_owned(),
                )
                    .into_response()
            }
            Some(FaultKind::OversizeAfterCommit { bytes }) => {
                let mut text = out.to_string();
                if text.len() < bytes {
                    text.push_str(&" ".repeat(bytes - text.len()));
                }
                (
                    StatusCode::OK,
                    [("content-type", "application/json;charset=utf-8")],
                    text,
                )
                    .into_response()
            }
            _ => json_value(&out),
        }
    }

    /// Processes a parsed request body: envelope rules, then the transaction.
    /// Returns the body to answer with.
    fn process(&self, route_infno: Option<&str>, value: Value) -> Value {
        let now = Local::now();
        // Bare decode body: {orgId, transType, data}.
        if value.get("infno").is_none()
            && route_infno.is_none_or(|i| i == "1162")
            && value.get("data").is_some()
        {
            let data = value.get("data").cloned().unwrap_or(Value::Null);
            return match self.lock().decode(&data, now) {
                Ok(d) => json!({"code": 0, "message": "成功", "success": true, "data": d}),
                Err(e) => e,
            };
        }
        let to_value = |r: &Response| serde_json::to_value(r).unwrap_or(Value::Null);
        let req: Request = match serde_json::from_value(value) {
            Ok(r) => r,
            Err(e) => {
                let r = self
                    .lock()
                    .stamp(Response::failure(format!("FSI-请求报文格式错误: {e}")), now);
                return to_value(&r);
            }
        };
        let span = tracing::info_span!("sim", infno = %req.infno, msgid = %Masked(&req.msgid));
        let _g = span.enter();
        if let Some(ri) = route_infno
            && ri != req.infno
            && !(ri == "2207" && req.infno == "2207A")
        {
            let r = self.lock().stamp(
                Response::failure(format!("FSI-交易编号{}与接口地址({ri})不符", req.infno)),
                now,
            );
            return to_value(&r);
        }
        let mut st = self.lock();
        if let Err(msg) = st.check_envelope(&req) {
            let r = st.stamp(Response::failure(msg), now);
            return to_value(&r);
        }
        if req.infno == "1162" {
            let data = req.input.get("data").cloned().unwrap_or(Value::Null);
            return match st.decode(&data, now) {
                Ok(d) => {
                    let r = st.stamp(Response::success(json!({"data": d})), now);
                    to_value(&r)
                }
                Err(e) => e,
            };
        }
        let r = st.handle(&req, now);
        tracing::debug!(infcode = r.infcode, "Simulator answered.");
        to_value(&r)
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    cancel: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "Simulator accept failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = cancel.cancelled() => return,
        };
        let router = router.clone();
        let tls = tls.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            // A second handle on the socket, to reset it (linger 0) on a fault.
            let Ok(std_stream) = stream.into_std() else {
                return;
            };
            let Ok(handle) = std_stream.try_clone() else {
                return;
            };
            let Ok(stream) = tokio::net::TcpStream::from_std(std_stream) else {
                return;
            };
            match tls {
                None => serve_conn(stream, router, handle, cancel).await,
                Some(acceptor) => {
                    let accepted = tokio::select! {
                        r = acceptor.accept(stream) => r,
                        _ = cancel.cancelled() => return,
                    };
                    match accepted {
                        Ok(s) => serve_conn(s, router, handle, cancel).await,
                        Err(e) => tracing::debug!(error = %e, "Simulator TLS handshake failed."),
                    }
                }
            }
        });
    }
}

async fn serve_conn<IO>(
    io: IO,
    router: Router,
    handle: std::net::TcpStream,
    cancel: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let abort = CancellationToken::new();
    let svc = hyper_util::service::TowerToHyperService::new(
        router.layer(Extension(ConnAbort(abort.clone()))),
    );
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(io), svc);
    tokio::select! {
        _ = conn => {}
        _ = abort.cancelled() => {
            let _ = socket2::SockRef::from(&handle).set_linger(Some(Duration::ZERO));
        }
        _ = cancel.cancelled() => {}
    }
}

/// Resets the connection the request came on; never answers.
async fn drop_connection(abort: Option<ConnAbort>) -> AxResponse {
    match abort {
        Some(a) => {
            a.0.cancel();
            std::future::pending::<AxResponse>().await
        }
        // Served by another loop: the best we can do is a body that breaks.
        None => {
            let s = futures_util::stream::iter([Err::<Bytes, std::io::Error>(
                std::io::Error::other("dropped by a simulated fault"),
            )]);
            (StatusCode::OK, Body::from_stream(s)).into_response()
        }
    }
}

fn malformed() -> AxResponse {
    (
        StatusCode::OK,
        [("content-type", "application/json;charset=utf-8")],
        "{\"infcode\":0,\"output\":{\"setlinfo\":{\"setl_id\":<html>upstream error",
    )
        .into_response()
}

/// Half the body under the full content-length, then a broken stream.
fn truncated(full: Vec<u8>) -> AxResponse {
    let len = full.len();
    let half = Bytes::from(full[..len / 2].to_vec());
    let s = futures_util::stream::iter([
        Ok::<Bytes, std::io::Error>(half),
        Err(std::io::Error::other("truncated by a simulated fault")),
    ]);
    (
        StatusCode::OK,
        [
            ("content-type", "application/json;charset=utf-8".to_string()),
            ("content-length", len.to_string()),
        ],
        Body::from_stream(s),
    )
        .into_response()
}

fn json_value(v: &Value) -> AxResponse {
    (
        StatusCode::OK,
        [("content-type", "application/json;charset=utf-8")],
        v.to_string(),
    )
        .into_response()
}

async fn single_endpoint(
    AxState(sim): AxState<Simulator>,
    abort: Option<Extension<ConnAbort>>,
    headers: HeaderMap,
    body: Bytes,
) -> AxResponse {
    sim.serve_post(None, &headers, &body, abort.map(|e| e.0))
        .await
}

async fn infno_in_url(
    AxState(sim): AxState<Simulator>,
    Path(seg): Path<String>,
    abort: Option<Extension<ConnAbort>>,
    headers: HeaderMap,
    body: Bytes,
) -> AxResponse {
    if catalogue::spec(&seg).is_none() {
        return (StatusCode::NOT_FOUND, format!("no such transaction {seg}")).into_response();
    }
    sim.serve_post(Some(&seg), &headers, &body, abort.map(|e| e.0))
        .await
}

async fn fsi_path(
    AxState(sim): AxState<Simulator>,
    Path((svc, method)): Path<(String, String)>,
    abort: Option<Extension<ConnAbort>>,
    headers: HeaderMap,
    body: Bytes,
) -> AxResponse {
    let path = format!("/{svc}/{method}");
    let infno = match catalogue::by_path(&path) {
        Some(s) => s.infno,
        None if path == "/outpatientSettleService/saveSettletment" => "2207",
        None => return (StatusCode::NOT_FOUND, format!("no such service {path}")).into_response(),
    };
    sim.serve_post(Some(infno), &headers, &body, abort.map(|e| e.0))
        .await
}

async fn people(AxState(sim): AxState<Simulator>) -> AxResponse {
    let list: Vec<Value> = sim.with_state(|s| {
        s.accounts
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let p = &a.person;
                json!({
                    "index": i,
                    "psn_no": p.psn_no,
                    "psn_name": p.name,
                    "certno": p.certno,
                    "card_no": p.card_no,
                    "card_sn": p.card_sn,
                    "insutypes": p.insurances.iter().map(|i| i.insutype).collect::<Vec<_>>(),
                    "insuplc_admdvs": p.insurances.first().map(|i| i.insuplc_admdvs),
                    "balance": a.balance.to_json(),
                    "note": p.note,
                })
            })
            .collect()
    });
    json_value(&Value::Array(list))
}

fn body_json(body: &Bytes) -> Result<Value, Box<AxResponse>> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| {
        Box::new((StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")).into_response())
    })
}

async fn codes(AxState(sim): AxState<Simulator>, body: Bytes) -> AxResponse {
    let req = match body_json(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let who = match req.get("person") {
        None | Some(Value::Null) => "0".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    match sim.issue_code(&who) {
        Some(c) => json_value(&json!({
            "code": c.code,
            "psn_no": c.psn_no,
            "expires_at": c.issued.expires_at.to_rfc3339(),
        })),
        None => (
            StatusCode::NOT_FOUND,
            format!("no test person {who:?}; GET /sim/people lists them"),
        )
            .into_response(),
    }
}

async fn ledger(AxState(sim): AxState<Simulator>) -> AxResponse {
    let l = sim.ledger();
    let check = match l.check() {
        Ok(()) => json!({"ok": true, "problems": []}),
        Err(p) => json!({"ok": false, "problems": p}),
    };
    let mut v = serde_json::to_value(&l).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("conservation".into(), check);
    }
    json_value(&v)
}

fn faults_view(sim: &Simulator) -> Value {
    let armed: Vec<Value> = sim
        .armed_faults()
        .into_iter()
        .map(|(id, r)| {
            let mut v = serde_json::to_value(&r).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut v {
                m.insert("id".into(), id.into());
            }
            v
        })
        .collect();
    json!({"armed": armed, "fired": sim.fired_faults()})
}

async fn faults_get(AxState(sim): AxState<Simulator>) -> AxResponse {
    json_value(&faults_view(&sim))
}

async fn faults_post(AxState(sim): AxState<Simulator>, body: Bytes) -> AxResponse {
    let v = match body_json(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let rules: Result<Vec<FaultRule>, _> = match v {
        Value::Array(_) => serde_json::from_value(v),
        other => serde_json::from_value(other).map(|r| vec![r]),
    };
    let rules = match rules {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("not a fault rule: {e}; see SIMULATOR.md"),
            )
                .into_response();
        }
    };
    if let Some(r) = rules
        .iter()
        .find(|r| matches!(r.kind, FaultKind::Http5xx { status } if !(500..=599).contains(&status)))
    {
        return (
            StatusCode::BAD_REQUEST,
            format!("http5xx status must be 500-599: {r:?}"),
        )
            .into_response();
    }
    let ids: Vec<u64> = rules.into_iter().map(|r| sim.add_fault(r)).collect();
    json_value(&json!({"ids": ids}))
}

async fn faults_delete(AxState(sim): AxState<Simulator>) -> AxResponse {
    sim.clear_faults();
    json_value(&faults_view(&sim))
}

async fn traffic(AxState(sim): AxState<Simulator>) -> AxResponse {
    let t = sim
        .traffic
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    json_value(&serde_json::to_value(t).unwrap_or(Value::Null))
}
