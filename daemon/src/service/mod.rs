//! Executes calls against the daemon's parts. The one place where requests
//! meet the scan hub, the identity resolver, the gateway and the
//! transaction engine.
//!
//! - [`call`]: what is asked ([`Call`]) and answered ([`Answer`],
//!   [`ServiceError`]), as domain values;
//! - [`caller`]: the connection a call comes from ([`Caller`]: cancellation,
//!   [`Outbox`] for notifications, subscriptions);
//! - [`demo`]: the demo's virtual scanner ([`DemoScanner`]).
//!
//! Transports (`api/`) parse into a [`Call`] and render the [`Answer`]; the
//! service never sees JSON-RPC.

pub mod call;
pub mod caller;
pub mod demo;

use std::sync::Arc;

use scanner_drivers::Drivers;
use settlement_client::Gateway;
use tokio::sync::broadcast::error::RecvError;
use tracing::{Instrument, debug, info};
use ybpos_config::Config;

pub use call::{Answer, Call, SCAN_WAIT_DEFAULT, ServiceError, SystemInfo};
pub use caller::{Caller, Notice, Outbox, Render};
pub use demo::{DemoError, DemoPerson, DemoScanned, DemoScanner};

use crate::classify::{Audience, CodeClass};
use crate::engine::Engine;
use crate::events::EventBus;
use crate::identity::{Given, Identified, Identity};
use crate::journal::Closure;
use crate::scanhub::{ScanHub, WaitError};

/// The daemon's parts, as calls reach them.
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
    /// Executes one call for `caller`.
    pub async fn execute(&self, call: Call, caller: &Caller) -> Result<Answer, ServiceError> {
        Ok(match call {
            Call::SystemInfo => Answer::SystemInfo(Box::new(self.system_info().await)),
            Call::ScannerList => Answer::Scanners(self.hub.list()),
            Call::Subscribe { topics } => Answer::Subscribed(self.subscribe(topics, caller)?),
            Call::Unsubscribe { subscription } => {
                if !caller.remove_subscription(&subscription) {
                    return Err(ServiceError::NoSuchSubscription);
                }
                Answer::Unsubscribed
            }
            Call::ScanWait {
                business_type,
                scanner,
                timeout,
            } => {
                let timeout = timeout.unwrap_or_else(|| self.scan_wait_default());
                let span = tracing::info_span!("scan_wait", business_type = %business_type);
                let who = self
                    .scan_wait(&business_type, scanner.as_deref(), timeout, caller)
                    .instrument(span)
                    .await?;
                Answer::Identity(Box::new(who))
            }
            Call::IdentityLookup {
                business_type,
                credential,
            } => {
                if self.refuses_typed_id_number(&credential) {
                    info!("A kiosk refused a lookup by a typed ID number.");
                    return Err(ServiceError::KioskTypedIdNumber);
                }
                Answer::Identity(Box::new(
                    self.identity.lookup(&business_type, credential).await?,
                ))
            }
            Call::Discover => Answer::Discovered,
            Call::DemoScan { person, kind, text } => match &self.demo {
                Some(d) => {
                    Answer::DemoScanned(d.scan(person.as_deref(), &kind, text.as_deref())?)
                }
                None => return Err(ServiceError::NotDemo),
            },
            Call::TxnSubmit(s) => {
                // Runs to its end even if the client goes away: money must not
                // be left half-done because a browser tab closed.
                let engine = Arc::clone(&self.engine);
                let rec = tokio::spawn(async move { engine.submit(s).await })
                    .await
                    .map_err(|e| ServiceError::TaskFailed(e.to_string()))??;
                Answer::Record(Box::new(rec))
            }
            Call::TxnGet(key) => Answer::Record(Box::new(self.engine.get(&key).await?)),
            Call::TxnList {
                since,
                state,
                needs_person,
                limit,
            } => Answer::Records(self.engine.list(since, state, needs_person, limit).await?),
            Call::TxnResolve {
                txn_id,
                outcome,
                operator,
                note,
            } => {
                let closure = Closure {
                    outcome,
                    operator,
                    note,
                    at: chrono::Local::now(),
                };
                Answer::Record(Box::new(self.engine.close(&txn_id, closure).await?))
            }
            Call::ReportUsage { from, to } => Answer::Usage(self.engine.usage(from, to).await?),
        })
    }

    /// `scan.wait`'s default: a kiosk's own, or a counter's 30 s.
    fn scan_wait_default(&self) -> std::time::Duration {
        self.cfg
            .kiosk
            .as_ref()
            .map_or(SCAN_WAIT_DEFAULT, |k| k.scan_wait_default)
    }

    /// Whether kiosk mode refuses this credential: an ID number typed in
    /// (not read from the card's chip) at an unattended machine, unless
    /// `[kiosk] typed_id_numbers` allows it.
    fn refuses_typed_id_number(&self, credential: &Given) -> bool {
        let Some(k) = &self.cfg.kiosk else {
            return false;
        };
        matches!(
            credential,
            Given::IdCard {
                read_from_card: false,
                ..
            }
        ) && !k.typed_id_numbers
    }

    async fn system_info(&self) -> SystemInfo {
        let link = self.gateway.state().borrow().clone();
        SystemInfo {
            cfg: Arc::clone(&self.cfg),
            link,
            scanners: self.hub.list(),
            journal_path: self.cfg.journal.path.clone(),
            journal: self.engine.counts().await,
        }
    }

    /// Starts forwarding the `topics` to the caller's outbox; returns the
    /// subscription's id.
    fn subscribe(&self, topics: Vec<String>, caller: &Caller) -> Result<String, ServiceError> {
        let Some(outbox) = caller.outbox.clone() else {
            return Err(ServiceError::NeedsLongLivedConnection);
        };
        let (id, stop) = caller.add_subscription();
        let mut rx = self.events.subscribe();
        let sub = id.clone();
        caller.tracker.spawn(async move {
            loop {
                let ev = tokio::select! {
                    _ = stop.cancelled() => return,
                    ev = rx.recv() => ev,
                };
                let ev = match ev {
                    Ok(ev) if topics.iter().any(|t| t == ev.topic()) => Ok(ev),
                    Ok(_) => continue,
                    Err(RecvError::Lagged(n)) => Err(n),
                    Err(RecvError::Closed) => return,
                };
                let notice = match &ev {
                    Ok(ev) => Notice::Event(ev),
                    Err(n) => Notice::Lagged(*n),
                };
                tokio::select! {
                    _ = stop.cancelled() => return,
                    sent = outbox.send(&sub, notice) => if !sent { return },
                }
            }
        });
        Ok(id)
    }

    async fn scan_wait(
        &self,
        business_type: &str,
        scanner: Option<&str>,
        timeout: std::time::Duration,
        caller: &Caller,
    ) -> Result<Identified, ServiceError> {
        let mut waiter = self.hub.wait(scanner)?;
        info!(scanner = waiter.scanner(), "Waiting for a scan.");
        if let Err(e) = self.drivers.arm(waiter.scanner()) {
            debug!(reason = %e, "Scanner not triggered.");
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let code = loop {
            let got = tokio::select! {
                _ = caller.cancel.cancelled() => {
                    info!("Client went away; wait cancelled.");
                    return Err(WaitError::Cancelled.into());
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(WaitError::Timeout(timeout).into());
                }
                got = waiter.next() => got,
            };
            let Some(c) = got else {
                return Err(WaitError::Gone(waiter.scanner().to_string()).into());
            };
            match c.class {
                CodeClass::MedicalCode => break c.scan.text,
                k if k.is_payment() => {
                    info!(
                        class = k.as_str(),
                        "A payment code was scanned during a wait."
                    );
                    let audience = if self.cfg.kiosk.is_some() {
                        Audience::Patient
                    } else {
                        Audience::Cashier
                    };
                    return Err(WaitError::PaymentCode(k, audience).into());
                }
                _ => {
                    info!("A scan that is not a 医保码 candidate was ignored during a wait.");
                    continue;
                }
            }
        };
        // The scanner is free for the next cashier as soon as the code is read.
        drop(waiter);
        Ok(self.identity.lookup(business_type, Given::Qr(code)).await?)
    }
}
