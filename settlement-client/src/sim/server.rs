//! The simulator's HTTP face: the three transport profiles, auth checks,
//! and the control API (`/sim/...`) used by tests, the demo and HIS vendors.
//!
//! Routes (base `http://HOST:PORT/fsi/api`):
//! - `POST /fsi/api/{service}/{method}` — `fsi-paths` profile;
//! - `POST /fsi/api/{infno}` — `infno-in-url` profile;
//! - `POST /fsi/api/callService` — `single-endpoint` profile (infno in the body);
//! - `GET /sim/people`, `POST /sim/codes` — control API (see the README).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response as AxResponse};
use axum::routing::{get, post};
use chrono::Local;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::state::{IssuedCode, SimSettings, State};
use crate::auth::Signer;
use crate::catalogue;
use crate::envelope::{Request, Response};
use crate::redact::Masked;

/// Largest request body the simulator reads.
const MAX_BODY: usize = 4 << 20;

/// A simulated settlement gateway.
#[derive(Debug, Clone)]
pub struct Simulator {
    state: Arc<Mutex<State>>,
    verifier: Arc<Signer>,
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
}

impl RunningSim {
    /// The base URL for the `fsi-paths` and `infno-in-url` profiles.
    pub fn base_url(&self) -> String {
        format!("http://{}/fsi/api", self.addr)
    }

    /// The URL for the `single-endpoint` profile.
    pub fn single_endpoint_url(&self) -> String {
        format!("http://{}/fsi/api/callService", self.addr)
    }

    /// Stops serving.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        let _ = self.task.await;
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

impl Simulator {
    /// A simulator with the built-in people; `verifier` checks request auth.
    pub fn new(settings: SimSettings, verifier: Signer) -> Self {
        Simulator {
            state: Arc::new(Mutex::new(State::new(settings))),
            verifier: Arc::new(verifier),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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
    pub fn ledger(&self) -> super::ledger::Ledger {
        self.lock().ledger()
    }

    /// Proves money is conserved (see [`super::ledger::Ledger::check`]).
    pub fn check_conservation(&self) -> Result<(), Vec<String>> {
        self.ledger().check()
    }

    /// The HTTP routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/fsi/api/callService", post(single_endpoint))
            .route("/fsi/api/{seg}", post(infno_in_url))
            .route("/fsi/api/{svc}/{method}", post(fsi_path))
            .route("/sim/people", get(people))
            .route("/sim/codes", post(codes))
            .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
            .with_state(self.clone())
    }

    /// Serves on `addr` (use port 0 for any free port) until shut down.
    pub async fn bind(self, addr: SocketAddr) -> std::io::Result<RunningSim> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let router = self.router();
        let c = cancel.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move { c.cancelled().await })
                .await;
        });
        Ok(RunningSim {
            addr,
            sim: self,
            cancel,
            task,
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

    /// Handles one POST for `route_infno` (None: take it from the body).
    fn serve_post(
        &self,
        route_infno: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
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
                return json_ok(&r);
            }
        };
        // Bare decode body: {orgId, transType, data}.
        if value.get("infno").is_none()
            && route_infno.is_none_or(|i| i == "1162")
            && value.get("data").is_some()
        {
            let data = value.get("data").cloned().unwrap_or(Value::Null);
            return match self.lock().decode(&data, now) {
                Ok(d) => {
                    json_value(&json!({"code": 0, "message": "成功", "success": true, "data": d}))
                }
                Err(e) => json_value(&e),
            };
        }
        let req: Request = match serde_json::from_value(value) {
            Ok(r) => r,
            Err(e) => {
                let r = self
                    .lock()
                    .stamp(Response::failure(format!("FSI-请求报文格式错误: {e}")), now);
                return json_ok(&r);
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
            return json_ok(&r);
        }
        let mut st = self.lock();
        if let Err(msg) = st.check_envelope(&req) {
            let r = st.stamp(Response::failure(msg), now);
            return json_ok(&r);
        }
        if req.infno == "1162" {
            let data = req.input.get("data").cloned().unwrap_or(Value::Null);
            return match st.decode(&data, now) {
                Ok(d) => {
                    let r = st.stamp(Response::success(json!({"data": d})), now);
                    json_ok(&r)
                }
                Err(e) => json_value(&e),
            };
        }
        let r = st.handle(&req, now);
        json_ok(&r)
    }
}

fn json_ok(r: &Response) -> AxResponse {
    json_value(&serde_json::to_value(r).unwrap_or(Value::Null))
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
    headers: HeaderMap,
    body: Bytes,
) -> AxResponse {
    sim.serve_post(None, &headers, &body)
}

async fn infno_in_url(
    AxState(sim): AxState<Simulator>,
    Path(seg): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> AxResponse {
    if catalogue::spec(&seg).is_none() {
        return (StatusCode::NOT_FOUND, format!("no such transaction {seg}")).into_response();
    }
    sim.serve_post(Some(&seg), &headers, &body)
}

async fn fsi_path(
    AxState(sim): AxState<Simulator>,
    Path((svc, method)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> AxResponse {
    let path = format!("/{svc}/{method}");
    let infno = match catalogue::by_path(&path) {
        Some(s) => s.infno,
        None if path == "/outpatientSettleService/saveSettletment" => "2207",
        None => return (StatusCode::NOT_FOUND, format!("no such service {path}")).into_response(),
    };
    sim.serve_post(Some(infno), &headers, &body)
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

async fn codes(AxState(sim): AxState<Simulator>, body: Bytes) -> AxResponse {
    let req: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return (StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")).into_response();
            }
        }
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
