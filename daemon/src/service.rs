//! Executes parsed calls against the daemon's parts. The one place where API
//! requests meet the scan hub, the identity resolver, the gateway and the
//! transaction engine.

use std::sync::Arc;

use scanner_drivers::Drivers;
use serde_json::{Value, json};
use settlement_client::{Gateway, LinkState};
use tokio::sync::broadcast::error::RecvError;
use tracing::{Instrument, debug, info};
use ybpos_config::Config;

use crate::api::conn::Conn;
use crate::api::error::ApiError;
use crate::api::jsonrpc;
use crate::api::methods::Call;
use crate::classify::CodeClass;
use crate::engine::Engine;
use crate::engine::runtime::Submit;
use crate::events::EventBus;
use crate::identity::{Given, Identity};
use crate::scanhub::ScanHub;

/// Puts test codes into the demo's virtual scanner (`demo.scan`).
pub trait DemoScanner: Send + Sync + std::fmt::Debug {
    /// Scans a code of `kind` for `person`, or `text`; returns what was scanned.
    fn scan(&self, person: Option<&str>, kind: &str, text: Option<&str>)
    -> Result<Value, ApiError>;
}

/// The daemon's parts, as the API sees them.
#[derive(Debug)]
pub struct Service {
    /// The validated config.
    pub cfg: Arc<Config>,
    /// The gateway client.
    pub gateway: Arc<Gateway>,
    /// Scanners and waits.
    pub hub: Arc<ScanHub>,
    /// Identity resolution and sessions.
    pub identity: Identity,
    /// The event bus.
    pub events: EventBus,
    /// The transaction engine.
    pub engine: Arc<Engine>,
    /// Demo mode's virtual scanner.
    pub demo: Option<Arc<dyn DemoScanner>>,
    /// The scanner back ends (to arm a scanner for a wait).
    pub drivers: Drivers,
}

impl Service {
    /// Executes one call for a connection.
    pub async fn execute(&self, call: Call, conn: &Arc<Conn>) -> Result<Value, ApiError> {
        match call {
            Call::SystemInfo => Ok(self.system_info().await),
            Call::ScannerList => Ok(self.hub.list()),
            Call::Subscribe { topics } => self.subscribe(topics, conn),
            Call::Unsubscribe { subscription } => {
                if conn.remove_subscription(&subscription) {
                    Ok(json!({}))
                } else {
                    Err(ApiError::invalid_params(
                        "subscription",
                        "no such subscription on this connection",
                    ))
                }
            }
            Call::ScanWait {
                business_type,
                scanner,
                timeout,
            } => {
                let span = tracing::info_span!("scan_wait", business_type = %business_type);
                self.scan_wait(&business_type, scanner.as_deref(), timeout, conn)
                    .instrument(span)
                    .await
            }
            Call::IdentityLookup {
                business_type,
                credential,
            } => self.identity.lookup(&business_type, credential).await,
            Call::DemoScan { person, kind, text } => match &self.demo {
                Some(d) => d.scan(person.as_deref(), &kind, text.as_deref()),
                None => Err(ApiError::method_not_found("demo.scan")),
            },
            Call::TxnSubmit {
                client_ref,
                infno,
                session_id,
                insuplc_admdvs,
                input,
            } => {
                // Runs to its end even if the client goes away: money must not
                // be left half-done because a browser tab closed.
                let engine = Arc::clone(&self.engine);
                let s = Submit {
                    client_ref,
                    infno,
                    session_id,
                    insuplc_admdvs,
                    input,
                };
                tokio::spawn(async move { engine.submit(s).await })
                    .await
                    .map_err(|e| ApiError::internal(e.to_string()))?
            }
            Call::TxnGet { client_ref, txn_id } => {
                self.engine
                    .get(client_ref.as_deref(), txn_id.as_deref())
                    .await
            }
            Call::TxnList {
                since,
                state,
                limit,
            } => {
                self.engine
                    .list(since.as_deref(), state.as_deref(), limit)
                    .await
            }
            Call::ReportUsage { from, to } => self.engine.usage(from, to).await,
        }
    }

    async fn system_info(&self) -> Value {
        let t = &self.cfg.terminal;
        let state = self.gateway.state().borrow().clone();
        let signed_in_at = match &state {
            LinkState::Online { signed_in_at } => Value::String(signed_in_at.to_rfc3339()),
            _ => Value::Null,
        };
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "api": "1",
            "terminal": {
                "fixmedins_code": t.fixmedins_code,
                "fixmedins_name": t.fixmedins_name,
                "opter": t.opter,
                "mdtrtarea_admvs": t.mdtrtarea_admvs,
            },
            "gateway": {
                "profile": self.cfg.gateway.profile.as_str(),
                "auth": self.cfg.gateway.auth.as_str(),
                "state": state.as_str(),
                "signed_in_at": signed_in_at,
            },
            "scanners": self.hub.list(),
            "journal": match self.engine.counts().await {
                Ok(c) => json!({
                    "path": self.cfg.journal.path.display().to_string(),
                    "unresolved": c.unresolved,
                    "reversal_failed": c.reversal_failed,
                    "stale": c.stale,
                }),
                Err(e) => json!({"error": e.to_string()}),
            },
        })
    }

    fn subscribe(&self, topics: Vec<String>, conn: &Arc<Conn>) -> Result<Value, ApiError> {
        let Some(outbox) = conn.outbox.clone() else {
            return Err(ApiError::invalid_request(
                "events need a long-lived connection: use the Unix socket or the WebSocket",
            ));
        };
        let (id, stop) = conn.add_subscription();
        let mut rx = self.events.subscribe();
        let sub = id.clone();
        conn.tracker.spawn(async move {
            loop {
                let ev = tokio::select! {
                    _ = stop.cancelled() => return,
                    ev = rx.recv() => ev,
                };
                let params = match ev {
                    Ok(ev) if topics.iter().any(|t| t == ev.topic) => {
                        let mut p = ev.params();
                        p["subscription"] = Value::String(sub.clone());
                        p
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(n)) => {
                        json!({"topic": "lagged", "missed": n, "subscription": sub})
                    }
                    Err(RecvError::Closed) => return,
                };
                tokio::select! {
                    _ = stop.cancelled() => return,
                    r = outbox.send(jsonrpc::notification(params)) => if r.is_err() { return },
                }
            }
        });
        Ok(json!({"subscription": id}))
    }

    async fn scan_wait(
        &self,
        business_type: &str,
        scanner: Option<&str>,
        timeout: std::time::Duration,
        conn: &Arc<Conn>,
    ) -> Result<Value, ApiError> {
        let mut waiter = self.hub.wait(scanner)?;
        info!(scanner = waiter.scanner(), "Waiting for a scan.");
        if let Err(e) = self.drivers.arm(waiter.scanner()) {
            debug!(reason = %e, "Scanner not triggered.");
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let code = loop {
            let got = tokio::select! {
                _ = conn.cancel.cancelled() => {
                    info!("Client went away; wait cancelled.");
                    return Err(ApiError::internal("client disconnected"));
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(ApiError::scan_timeout(timeout.as_millis() as u64));
                }
                got = waiter.next() => got,
            };
            let Some(c) = got else {
                return Err(ApiError::scanner_unavailable(
                    waiter.scanner(),
                    "went away during the wait",
                ));
            };
            match c.class {
                CodeClass::MedicalCode => break c.scan.text,
                k if k.is_payment() => {
                    info!(
                        class = k.as_str(),
                        "A payment code was scanned during a wait."
                    );
                    return Err(ApiError::not_medical_code(k.as_str(), k.cashier_hint()));
                }
                _ => {
                    info!("A scan that is not a 医保码 candidate was ignored during a wait.");
                    continue;
                }
            }
        };
        // The scanner is free for the next cashier as soon as the code is read.
        drop(waiter);
        self.identity.lookup(business_type, Given::Qr(code)).await
    }
}
