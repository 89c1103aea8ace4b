//! The settlement gateway as the daemon uses it: envelopes, msgids, sign-in.
//!
//! [`Gateway`] builds the §2 envelope for a transaction, keeps the `sign_no`
//! from 9001 fresh (at start, daily, and when the gateway rejects it), signs
//! and posts through [`HttpTransport`], and classifies every answer into an
//! [`Outcome`]. Callers that must journal a request before it leaves use
//! [`Gateway::prepare`] + [`Gateway::send`]; the rest use [`Gateway::call`].

use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use chrono::{DateTime, Local};
use serde_json::{Value, json};
use tokio::sync::watch;
use tracing::{info, warn};
use ybpos_config::Terminal;

use crate::auth::Signer;
use crate::decode::{self, DecodeContext, Decoded};
use crate::envelope::{Request, Response};
use crate::http::{HttpSettings, HttpSetupError, HttpTransport};
use crate::msgid::{MsgId, MsgIdAllocator};
use crate::outcome::Outcome;
use crate::transport::Endpoints;

/// A sign-in is renewed after this long even if the gateway never complains.
pub const SIGN_IN_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Whether the daemon can talk to the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// No valid sign-in; the last attempt failed.
    Offline {
        /// Why.
        reason: String,
    },
    /// A sign-in is in flight.
    SigningIn,
    /// Signed in.
    Online {
        /// When.
        signed_in_at: DateTime<Local>,
    },
}

impl LinkState {
    /// The API spelling: `offline`, `signing_in`, `online`.
    pub fn as_str(&self) -> &'static str {
        match self {
            LinkState::Offline { .. } => "offline",
            LinkState::SigningIn => "signing_in",
            LinkState::Online { .. } => "online",
        }
    }
}

/// A current sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    /// The `sign_no` to put in every envelope.
    pub sign_no: String,
    /// When it was obtained.
    pub at: DateTime<Local>,
}

/// Everything needed to build a [`Gateway`].
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// The institution and operator.
    pub terminal: Terminal,
    /// Where transactions go.
    pub endpoints: Endpoints,
    /// Timeouts, limits, CAs.
    pub http: HttpSettings,
    /// Receiving system code.
    pub recer_sys_code: String,
    /// Interface version.
    pub infver: String,
    /// Device number (optional).
    pub dev_no: Option<String>,
    /// Send decode without the common envelope.
    pub decode_bare: bool,
    /// MAC reported at sign-in.
    pub mac: String,
    /// IP reported at sign-in.
    pub ip: String,
}

impl GatewaySettings {
    /// A gateway at `url` with the config file's defaults (FSI paths, no
    /// extra CA, 2 s to connect, 5 s per request, 1 MiB answers): what the
    /// simulator's tests and the benchmarks start from.
    pub fn plain(url: &str, terminal: Terminal) -> Self {
        GatewaySettings {
            terminal,
            endpoints: Endpoints::new(url, ybpos_config::Profile::FsiPaths, Default::default()),
            http: HttpSettings {
                connect_timeout: Duration::from_secs(2),
                request_timeout: Duration::from_secs(5),
                max_response_bytes: 1 << 20,
                ca_pem: None,
            },
            recer_sys_code: "FSI_LOCAL".into(),
            infver: "V1.0".into(),
            dev_no: None,
            decode_bare: false,
            mac: "00:00:00:00:00:00".into(),
            ip: "127.0.0.1".into(),
        }
    }

    /// Settings from the validated config file.
    pub fn from_config(cfg: &ybpos_config::Config) -> std::io::Result<Self> {
        let g = &cfg.gateway;
        let ca_pem = match &g.ca_file {
            Some(f) => Some(std::fs::read(f)?),
            None => None,
        };
        Ok(GatewaySettings {
            terminal: cfg.terminal.clone(),
            endpoints: Endpoints::new(&g.url, g.profile, g.paths.clone()),
            http: HttpSettings {
                connect_timeout: g.connect_timeout,
                request_timeout: g.request_timeout,
                max_response_bytes: g.max_response_bytes,
                ca_pem,
            },
            recer_sys_code: g.recer_sys_code.clone(),
            infver: g.infver.clone(),
            dev_no: g.dev_no.clone(),
            decode_bare: g.decode_bare,
            mac: g.mac.clone(),
            ip: g.ip.clone(),
        })
    }
}

/// Loads the signer for the configured auth mode, reading its secret file.
pub fn signer_from_config(cfg: &ybpos_config::Config) -> std::io::Result<Signer> {
    use ybpos_config::Auth;
    let read = |p: &std::path::Path| -> std::io::Result<String> {
        Ok(std::fs::read_to_string(p)?
            .trim_end_matches(['\r', '\n'])
            .to_string())
    };
    Ok(match &cfg.gateway.auth {
        Auth::None => Signer::None,
        Auth::Tif {
            paasid,
            secret_file,
        } => Signer::Tif {
            paasid: paasid.clone(),
            secret: read(secret_file)?,
        },
        Auth::XCa { key, secret_file } => Signer::XCa {
            key: key.clone(),
            secret: read(secret_file)?,
        },
        Auth::ApiKey { secret_file } => Signer::ApiKey {
            key: read(secret_file)?,
        },
    })
}

/// A request built and ready to journal and send.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The msgid (handle for reversal).
    pub msgid: MsgId,
    /// The envelope.
    pub request: Request,
    /// The exact bytes that will be posted.
    pub body: Vec<u8>,
    /// Where they will be posted.
    pub url: String,
}

/// Told of every call's infno, outcome class and duration (for latency
/// metrics); set once with [`Gateway::observe_calls`].
pub type CallObserver = Arc<dyn Fn(&str, &'static str, Duration) + Send + Sync>;

struct Observer(CallObserver);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallObserver")
    }
}

/// The gateway client.
#[derive(Debug)]
pub struct Gateway {
    settings: GatewaySettings,
    http: RwLock<HttpTransport>,
    observer: OnceLock<Observer>,
    msgids: Mutex<MsgIdAllocator>,
    sign_in: tokio::sync::Mutex<Option<SignIn>>,
    state: watch::Sender<LinkState>,
    sign_in_max_age: Duration,
}

impl Gateway {
    /// A client; nothing is sent until the first call.
    pub fn new(settings: GatewaySettings, signer: Signer) -> Result<Self, HttpSetupError> {
        let tls = settings.endpoints.uses_tls();
        let http = HttpTransport::new(&settings.http, signer, tls)?;
        let msgids = Mutex::new(MsgIdAllocator::with_node(
            &settings.terminal.fixmedins_code,
            settings.terminal.msgid_node,
        ));
        Ok(Gateway {
            settings,
            http: RwLock::new(http),
            observer: OnceLock::new(),
            msgids,
            sign_in: tokio::sync::Mutex::new(None),
            state: watch::channel(LinkState::Offline {
                reason: "not signed in yet".into(),
            })
            .0,
            sign_in_max_age: SIGN_IN_MAX_AGE,
        })
    }

    /// Calls `f` after every request with its infno, outcome class and
    /// duration (only the first observer set counts).
    pub fn observe_calls(&self, f: CallObserver) {
        let _ = self.observer.set(Observer(f));
    }

    /// Replaces the HTTP settings (timeouts, response limit, CAs) for
    /// requests that start from now on; requests in flight finish under the
    /// settings they started with.
    pub fn set_http(&self, settings: &HttpSettings) -> Result<(), HttpSetupError> {
        let next = self.transport().with_settings(settings)?;
        *self.http.write().unwrap_or_else(|e| e.into_inner()) = next;
        Ok(())
    }

    /// The transport for one request.
    fn transport(&self) -> HttpTransport {
        self.http.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn observed<T>(&self, infno: &str, started: tokio::time::Instant, out: &Outcome<T>) {
        if let Some(o) = self.observer.get() {
            (o.0)(infno, out.class(), started.elapsed());
        }
    }

    /// Renews the sign-in after `age` instead of a day (tests; gateways
    /// known to expire `sign_no` sooner).
    pub fn with_sign_in_max_age(mut self, age: Duration) -> Self {
        self.sign_in_max_age = age;
        self
    }

    /// The current sign-in, if any (without signing in).
    pub async fn current_sign_in(&self) -> Option<SignIn> {
        self.sign_in.lock().await.clone()
    }

    /// Watch the link state (for `system.info` and the `gateway` topic).
    pub fn state(&self) -> watch::Receiver<LinkState> {
        self.state.subscribe()
    }

    /// Never reuse msgids up to `last` (e.g. the newest in the journal).
    pub fn resume_msgids_after(&self, last: &MsgId) {
        self.msgids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .resume_after(last);
    }

    /// A fresh msgid.
    pub fn next_msgid(&self) -> MsgId {
        self.msgids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next(Local::now().naive_local())
    }

    /// The terminal this gateway speaks for.
    pub fn terminal(&self) -> &Terminal {
        &self.settings.terminal
    }

    /// Builds the envelope for `infno` with a new msgid.
    pub fn prepare(
        &self,
        infno: &str,
        input: Value,
        insuplc_admdvs: &str,
        sign_no: &str,
    ) -> Result<Prepared, String> {
        let msgid = self.next_msgid();
        self.prepare_with(msgid, infno, input, insuplc_admdvs, sign_no)
    }

    /// Builds the envelope for `infno` with a given msgid (resending a not-sent request).
    pub fn prepare_with(
        &self,
        msgid: MsgId,
        infno: &str,
        input: Value,
        insuplc_admdvs: &str,
        sign_no: &str,
    ) -> Result<Prepared, String> {
        let url = self
            .settings
            .endpoints
            .url(infno)
            .map_err(|e| e.to_string())?;
        let t = &self.settings.terminal;
        let request = Request {
            infno: infno.to_string(),
            msgid: msgid.to_string(),
            mdtrtarea_admvs: t.mdtrtarea_admvs.clone(),
            insuplc_admdvs: insuplc_admdvs.to_string(),
            recer_sys_code: self.settings.recer_sys_code.clone(),
            dev_no: self.settings.dev_no.clone().unwrap_or_default(),
            dev_safe_info: String::new(),
            cainfo: String::new(),
            signtype: String::new(),
            infver: self.settings.infver.clone(),
            opter_type: t.opter_type.clone(),
            opter: t.opter.clone(),
            opter_name: t.opter_name.clone(),
            inf_time: Local::now().format("%Y-%m-%d %H:%M:%S").to_string(),
            fixmedins_code: t.fixmedins_code.clone(),
            fixmedins_name: t.fixmedins_name.clone(),
            sign_no: sign_no.to_string(),
            input,
        };
        let body = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
        Ok(Prepared {
            msgid,
            request,
            body,
            url,
        })
    }

    /// Posts a prepared request and judges the envelope.
    pub async fn send(&self, p: &Prepared) -> Outcome<Response> {
        let span = tracing::debug_span!("gateway", infno = %p.request.infno, msgid = %p.msgid);
        let _g = span.enter();
        let started = tokio::time::Instant::now();
        let out = self
            .transport()
            .post(&p.url, p.body.clone())
            .await
            .and_then(judge_envelope);
        self.observed(&p.request.infno, started, &out);
        tracing::debug!(outcome = out.class(), "Gateway answered.");
        out
    }

    /// Signs in (9001) and remembers the `sign_no`.
    pub async fn sign_in(&self) -> Outcome<SignIn> {
        let mut guard = self.sign_in.lock().await;
        self.sign_in_locked(&mut guard).await
    }

    async fn sign_in_locked(&self, slot: &mut Option<SignIn>) -> Outcome<SignIn> {
        self.state.send_replace(LinkState::SigningIn);
        let t = &self.settings.terminal;
        let input = json!({"signIn": {"opter_no": t.opter, "mac": self.settings.mac, "ip": self.settings.ip}});
        let out = match self.prepare("9001", input, "", "") {
            Ok(p) => self.send(&p).await,
            Err(e) => Outcome::NotSent { reason: e },
        };
        let out = out.and_then(|r| {
            let sign_no = r
                .output
                .as_ref()
                .and_then(|o| o.get("signinoutb"))
                .and_then(|s| s.get("sign_no"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if sign_no.is_empty() {
                Outcome::Unknown {
                    reason: "9001 succeeded without signinoutb.sign_no".into(),
                }
            } else {
                Outcome::Ok(SignIn {
                    sign_no,
                    at: Local::now(),
                })
            }
        });
        match &out {
            Outcome::Ok(s) => {
                info!("Signed in at the gateway.");
                *slot = Some(s.clone());
                self.state
                    .send_replace(LinkState::Online { signed_in_at: s.at });
            }
            other => {
                let reason = match other {
                    Outcome::Rejected { err_msg, .. } => err_msg.clone(),
                    Outcome::NotSent { reason } | Outcome::Unknown { reason } => reason.clone(),
                    Outcome::Ok(_) => String::new(),
                };
                warn!(outcome = other.class(), %reason, "Sign-in failed.");
                *slot = None;
                self.state.send_replace(LinkState::Offline { reason });
            }
        }
        out
    }

    /// The current `sign_no`, signing in first when there is none or it is a day old.
    pub async fn sign_no(&self) -> Outcome<String> {
        let mut guard = self.sign_in.lock().await;
        if let Some(s) = guard.as_ref() {
            let age = Local::now().signed_duration_since(s.at);
            if age.to_std().is_ok_and(|a| a < self.sign_in_max_age) {
                return Outcome::Ok(s.sign_no.clone());
            }
        }
        self.sign_in_locked(&mut guard).await.map(|s| s.sign_no)
    }

    /// Forgets a `sign_no` the gateway rejected, so the next call signs in again.
    pub async fn invalidate_sign_in(&self, sign_no: &str) {
        let mut guard = self.sign_in.lock().await;
        if guard.as_ref().is_some_and(|s| s.sign_no == sign_no) {
            *guard = None;
            self.state.send_replace(LinkState::Offline {
                reason: "the gateway rejected the sign_no".into(),
            });
        }
    }

    /// Signs out (9002), on clean shutdown.
    pub async fn sign_out(&self) -> Outcome<()> {
        let mut guard = self.sign_in.lock().await;
        let Some(s) = guard.take() else {
            return Outcome::Ok(());
        };
        let input =
            json!({"signOut": {"sign_no": s.sign_no, "opter_no": self.settings.terminal.opter}});
        let out = match self.prepare("9002", input, "", &s.sign_no) {
            Ok(p) => self.send(&p).await.map(|_| ()),
            Err(e) => Outcome::NotSent { reason: e },
        };
        self.state.send_replace(LinkState::Offline {
            reason: "signed out".into(),
        });
        out
    }

    /// A call that needs no journal (queries, 1101): signs in as needed and
    /// retries once with a fresh sign-in when the `sign_no` is rejected.
    pub async fn call(&self, infno: &str, input: Value, insuplc_admdvs: &str) -> Outcome<Response> {
        for attempt in 0..2 {
            let sign_no = match self.sign_no().await {
                Outcome::Ok(s) => s,
                Outcome::Rejected { infcode, err_msg } => {
                    return Outcome::Rejected { infcode, err_msg };
                }
                Outcome::NotSent { reason } => return Outcome::NotSent { reason },
                Outcome::Unknown { reason } => return Outcome::NotSent { reason },
            };
            let p = match self.prepare(infno, input.clone(), insuplc_admdvs, &sign_no) {
                Ok(p) => p,
                Err(e) => return Outcome::NotSent { reason: e },
            };
            let out = self.send(&p).await;
            if attempt == 0 && out.is_sign_in_rejection() {
                self.invalidate_sign_in(&sign_no).await;
                continue;
            }
            return out;
        }
        unreachable!("the loop returns on its second pass")
    }

    /// Decodes a scanned 医保码 (1162).
    pub async fn decode(&self, qr: &str, ctx: &DecodeContext) -> Outcome<Decoded> {
        let data = decode::input_data(qr, ctx);
        if self.settings.decode_bare {
            let url = match self.settings.endpoints.url("1162") {
                Ok(u) => u,
                Err(e) => {
                    return Outcome::NotSent {
                        reason: e.to_string(),
                    };
                }
            };
            let body = json!({"orgId": ctx.org_id, "transType": "ec.query", "data": data});
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            let started = tokio::time::Instant::now();
            let out = self
                .transport()
                .post(&url, bytes)
                .await
                .and_then(decode::read_response);
            self.observed("1162", started, &out);
            return out;
        }
        for attempt in 0..2 {
            let sign_no = match self.sign_no().await {
                Outcome::Ok(s) => s,
                Outcome::Rejected { infcode, err_msg } => {
                    return Outcome::Rejected { infcode, err_msg };
                }
                Outcome::NotSent { reason } | Outcome::Unknown { reason } => {
                    return Outcome::NotSent { reason };
                }
            };
            let p = match self.prepare("1162", json!({"data": data.clone()}), "", &sign_no) {
                Ok(p) => p,
                Err(e) => return Outcome::NotSent { reason: e },
            };
            let started = tokio::time::Instant::now();
            let out = self
                .transport()
                .post(&p.url, p.body.clone())
                .await
                .and_then(decode::read_response);
            self.observed("1162", started, &out);
            if attempt == 0 && out.is_sign_in_rejection() {
                self.invalidate_sign_in(&sign_no).await;
                continue;
            }
            return out;
        }
        unreachable!("the loop returns on its second pass")
    }
}

/// Reads a JSON body as the §3 envelope: infcode 0 = Ok, else Rejected;
/// anything that is not an envelope = Unknown.
pub fn judge_envelope(body: Value) -> Outcome<Response> {
    match serde_json::from_value::<Response>(body) {
        Ok(r) if r.infcode == 0 => Outcome::Ok(r),
        Ok(r) => Outcome::Rejected {
            infcode: r.infcode,
            err_msg: r.err_msg.unwrap_or_default(),
        },
        Err(e) => Outcome::Unknown {
            reason: format!("response is not a gateway envelope: {e}"),
        },
    }
}
