//! The engine at work: `txn.submit`, the resolver of unknown outcomes, and
//! recovery at start-up.
//!
//! Order of every request: journal the record with its msgid and full
//! request as `sent` (one synced write) → post → journal the outcome
//! (synced). A crash anywhere leaves a record whose state says what may have
//! happened, and recovery acts on it before the daemon
//! reports ready. Unknown outcomes of reversible transactions are reversed
//! with 2601 under the original msgid, with back-off, until definitive; no
//! record ever gets a new msgid while an older attempt may be in effect.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Local;
use serde_json::{Map, Value, json};
use settlement_client::catalogue::{self, TxnSpec};
use settlement_client::envelope::Response;
use settlement_client::gateway::Prepared;
use settlement_client::msgid::MsgId;
use settlement_client::reversal::ReversalAnswer;
use settlement_client::{Gateway, Outcome};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, error, info, warn};

use super::machine::{self, Action, Answer, Event, FailKind, Resolution, State, Verdict};
use crate::api::error::ApiError;
use crate::events::EventBus;
use crate::journal::{Counts, Inserted, Journal, JournalError, Record, Reversal};
use crate::sessions::Sessions;

/// Transactions the engine runs itself and never takes from clients.
const INTERNAL: &[&str] = &["9001", "9002", "1162", "2601"];

/// Times a never-sent request is retried within one `txn.submit`.
const NOT_SENT_RETRIES: u32 = 2;

/// Back-off between resolution attempts: doubles from 1 s up to this.
const RESOLVE_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// An unresolved record older than this is reported as stale (error log, metric).
pub const STALE_AFTER: Duration = Duration::from_secs(10 * 60);

/// How often the resolver looks at open records that have nothing due.
const STALE_CHECK: Duration = Duration::from_secs(60);

/// Test-only crash points: `YBPOS_CRASH_AT=name[:n]` kills the process with
/// SIGKILL the n-th time `name` is reached (feature `crash-points`).
pub mod crash {
    /// Dies here if this is the configured crash point.
    #[cfg(feature = "crash-points")]
    pub fn point(name: &str) {
        use std::sync::OnceLock;
        use std::sync::atomic::{AtomicU64, Ordering};
        static CFG: OnceLock<Option<(String, u64)>> = OnceLock::new();
        static HITS: AtomicU64 = AtomicU64::new(0);
        let cfg = CFG.get_or_init(|| {
            let v = std::env::var("YBPOS_CRASH_AT").ok()?;
            let (n, k) = v.split_once(':').unwrap_or((&v, "1"));
            Some((n.to_string(), k.parse().unwrap_or(1)))
        });
        if let Some((n, k)) = cfg
            && n == name
            && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *k
        {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
    }

    /// Crash points are compiled out.
    #[cfg(not(feature = "crash-points"))]
    #[inline(always)]
    pub fn point(_name: &str) {}
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// "Nothing to reverse" is believed only this long after the original
    /// was sent: a slow original can arrive after its reversal.
    pub reversal_grace: Duration,
}

impl EngineSettings {
    /// From the config: `journal.reversal_grace_ms`, by default twice the
    /// gateway request timeout.
    pub fn from_config(cfg: &ybpos_config::Config) -> Self {
        EngineSettings {
            reversal_grace: cfg
                .journal
                .reversal_grace
                .unwrap_or(cfg.gateway.request_timeout * 2),
        }
    }
}

/// The money engine.
#[derive(Debug)]
pub struct Engine {
    settings: EngineSettings,
    journal: Journal,
    gateway: Arc<Gateway>,
    sessions: Arc<Sessions>,
    events: EventBus,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    backoff: Mutex<HashMap<String, (tokio::time::Instant, Duration)>>,
    stale_reported: Mutex<std::collections::HashSet<String>>,
    wake: Notify,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

/// A parsed `txn.submit`.
#[derive(Debug, Clone)]
pub struct Submit {
    /// Idempotency key.
    pub client_ref: String,
    /// Transaction number.
    pub infno: String,
    /// Identity session to fill from.
    pub session_id: Option<String>,
    /// Envelope `insuplc_admdvs` when no session is given (extension).
    pub insuplc_admdvs: Option<String>,
    /// The platform `input`.
    pub input: Map<String, Value>,
}

fn fatal(e: &JournalError) -> ! {
    // The request may have left: without the journal we cannot promise
    // anything. Die; recovery at the next start resolves the record.
    error!(error = %e, "Journal write failed after a request left; stopping so recovery can resolve it.");
    std::process::abort()
}

impl Engine {
    /// Opens the engine on `journal`; call [`Engine::recover`] before serving.
    pub fn new(
        settings: EngineSettings,
        journal: Journal,
        gateway: Arc<Gateway>,
        sessions: Arc<Sessions>,
        events: EventBus,
    ) -> Arc<Engine> {
        Arc::new(Engine {
            settings,
            journal,
            gateway,
            sessions,
            events,
            locks: Mutex::new(HashMap::new()),
            backoff: Mutex::new(HashMap::new()),
            stale_reported: Mutex::new(Default::default()),
            wake: Notify::new(),
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
        })
    }

    /// The journal (for reports).
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    fn lock_for(&self, txn_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, l| Arc::strong_count(l) > 1);
        Arc::clone(m.entry(txn_id.to_string()).or_default())
    }

    /// Start-up: resumes the msgid allocator past every journaled id, turns
    /// interrupted records into their recovered states, and starts the
    /// resolver. Returns how many records were unresolved.
    pub async fn recover(self: &Arc<Self>) -> Result<usize, JournalError> {
        let prefix = &self.gateway.terminal().fixmedins_code;
        if let Some(m) = self.journal.max_msgid(prefix).await?
            && let Ok(m) = MsgId::parse(&m)
        {
            self.gateway.resume_msgids_after(&m);
        }
        // Ids of requests sent just before a crash but never journaled (9001,
        // 1101) may use this second, or seconds ahead of the clock after
        // quick restarts: start after all of them.
        let start = self
            .journal
            .claim_msgid_start(Local::now().naive_local())
            .await?;
        let before = start - chrono::TimeDelta::seconds(1);
        if let Ok(m) = MsgId::parse(&format!("{prefix}{}9999", before.format("%Y%m%d%H%M%S"))) {
            self.gateway.resume_msgids_after(&m);
        }
        let open = self.journal.unresolved().await?;
        let n = open.len();
        for mut rec in open {
            let r = resolution_of(&rec.infno);
            let before = rec.state;
            let after =
                machine::apply(before, r, rec.fail_kind, &Event::Recovered).unwrap_or(before);
            if after != before {
                rec.state = after;
                if after == State::Failed {
                    rec.fail_kind = Some(FailKind::NotSent);
                    rec.error = Some(
                        json!({"kind": "not_sent", "reason": "the daemon stopped before sending; resubmit to send it"}),
                    );
                }
                rec.updated_at = Local::now();
                self.save(&rec, Some(format!("recovered from {}", before.as_str())))
                    .await?;
            }
            info!(txn_id = %rec.txn_id, infno = %rec.infno, state = rec.state.as_str(), "Recovered a transaction.");
        }
        let me = Arc::clone(self);
        self.tracker
            .spawn(async move { me.resolver().await }.instrument(tracing::info_span!("resolver")));
        Ok(n)
    }

    /// Stops the resolver (records stay journaled for the next start).
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Counts for `system.info` and metrics.
    pub async fn counts(&self) -> Result<Counts, JournalError> {
        let stale = Local::now() - chrono::Duration::from_std(STALE_AFTER).unwrap_or_default();
        self.journal.counts(stale).await
    }

    async fn save(&self, rec: &Record, detail: Option<String>) -> Result<(), JournalError> {
        self.journal.save(rec.clone(), detail).await?;
        crate::metrics::global()
            .txn_states
            .inc(&[&rec.infno, rec.state.as_str()]);
        self.publish(rec);
        Ok(())
    }

    fn publish(&self, rec: &Record) {
        self.events.publish(
            "txn",
            json!({"txn_id": rec.txn_id, "client_ref": rec.client_ref, "infno": rec.infno, "state": rec.state.as_str()}),
        );
    }

    /// `txn.submit`.
    pub async fn submit(self: &Arc<Self>, s: Submit) -> Result<Value, ApiError> {
        let span = tracing::info_span!("txn", client_ref = %s.client_ref, infno = %s.infno, txn_id = tracing::field::Empty);
        self.submit_inner(s).instrument(span).await
    }

    async fn submit_inner(self: &Arc<Self>, s: Submit) -> Result<Value, ApiError> {
        let spec = match catalogue::spec(&s.infno) {
            Some(spec) if !INTERNAL.contains(&spec.infno) => spec,
            Some(_) => {
                return Err(ApiError::invalid_params(
                    "infno",
                    "this transaction is run by the daemon itself",
                ));
            }
            None => {
                return Err(ApiError::invalid_params(
                    "infno",
                    format!("unknown transaction {:?}", s.infno),
                ));
            }
        };
        let hash = request_hash(&s);
        let internal = |e: JournalError| ApiError::internal(e.to_string());
        if let Some(existing) = self
            .journal
            .by_client_ref(&s.client_ref)
            .await
            .map_err(internal)?
        {
            return self.resubmitted(existing, &hash).await;
        }
        // Fill from the session, then check what the platform requires.
        let filled = self.fill(spec, &s)?;
        catalogue::check_required(spec, &Value::Object(filled.input.clone())).map_err(|field| {
            ApiError::invalid_params(&field, "is required for this transaction")
        })?;
        if filled.input_names_psn_no && filled.insuplc_admdvs.len() != 6 {
            return Err(ApiError::invalid_params(
                "insuplc_admdvs",
                "give session_id (or insuplc_admdvs) so the envelope names where the person is insured",
            ));
        }
        let sale_key = sale_key(spec, &filled.input);
        let sign_no = match self.gateway.sign_no().await {
            Outcome::Ok(s) => s,
            Outcome::Rejected { err_msg, .. } => {
                return Err(ApiError::gateway_unreachable(&format!(
                    "sign-in refused: {err_msg}"
                )));
            }
            Outcome::NotSent { reason } | Outcome::Unknown { reason } => {
                return Err(ApiError::gateway_unreachable(&reason));
            }
        };
        let prepared = self
            .gateway
            .prepare(
                &s.infno,
                Value::Object(filled.input.clone()),
                &filled.insuplc_admdvs,
                &sign_no,
            )
            .map_err(ApiError::internal)?;
        let now = Local::now();
        let txn_id = format!(
            "txn_{}_{:08x}",
            now.format("%Y%m%d%H%M%S"),
            rand::random::<u32>()
        );
        tracing::Span::current().record("txn_id", txn_id.as_str());
        let rec = Record {
            txn_id: txn_id.clone(),
            client_ref: s.client_ref.clone(),
            infno: s.infno.clone(),
            request_hash: hash.clone(),
            session_id: s.session_id.clone(),
            input: Value::Object(filled.input.clone()),
            insuplc_admdvs: filled.insuplc_admdvs.clone(),
            psn_no: filled.psn_no.clone(),
            mdtrt_cert_type: filled.mdtrt_cert_type.clone(),
            sale_key,
            msgid: prepared.msgid.to_string(),
            request: Some(String::from_utf8_lossy(&prepared.body).into_owned()),
            // Written once, as `sent`, before the request leaves: one synced
            // write instead of two (pending, then sent). A crash before the
            // post leaves a `sent` record that recovery reverses harmlessly.
            state: State::Sent,
            fail_kind: None,
            output: None,
            error: None,
            reversal: None,
            attempts: 1,
            setl_id: None,
            cancels_setl_id: spec.cancels.and_then(|_| {
                filled
                    .input
                    .get("data")?
                    .get("setl_id")?
                    .as_str()
                    .map(str::to_string)
            }),
            sent_at: Some(now),
            created_at: now,
            updated_at: now,
        };
        let lock = self.lock_for(&txn_id);
        let _held = lock.lock().await;
        crash::point("before_journal");
        match self.journal.insert(rec.clone()).await.map_err(internal)? {
            Inserted::New => {}
            Inserted::Existing(e) => {
                drop(_held);
                return self.resubmitted(*e, &hash).await;
            }
            Inserted::SaleUnresolved(older) => {
                return Err(ApiError::outcome_unknown(
                    &older.txn_id,
                    "an earlier attempt of this sale is still being resolved; follow it with txn.get",
                ));
            }
        }
        self.publish(&rec);
        crash::point("after_journal");
        info!(msgid = %rec.msgid, "Transaction journaled.");
        let rec = self.drive(rec, prepared).await;
        Ok(record_json(&rec))
    }

    /// The same client_ref again: same body → the record (after any in-flight
    /// work on it ends); a never-sent one is sent again; different body → error.
    async fn resubmitted(
        self: &Arc<Self>,
        existing: Record,
        hash: &str,
    ) -> Result<Value, ApiError> {
        if existing.request_hash != hash {
            return Err(ApiError::duplicate_client_ref(&existing.client_ref));
        }
        let lock = self.lock_for(&existing.txn_id);
        let _held = lock.lock().await;
        let internal = |e: JournalError| ApiError::internal(e.to_string());
        let mut rec = self
            .journal
            .by_txn_id(&existing.txn_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| ApiError::internal("record vanished"))?;
        if rec.state == State::Failed && rec.fail_kind.is_some_and(FailKind::retryable) {
            info!(txn_id = %rec.txn_id, "Resubmitted a never-sent transaction; sending it again.");
            let prepared = match self.reprepare(&mut rec).await {
                Ok(p) => p,
                Err(reason) => return Err(ApiError::gateway_unreachable(&reason)),
            };
            rec.state = machine::apply(
                rec.state,
                resolution_of(&rec.infno),
                rec.fail_kind,
                &Event::Retried,
            )
            .map_err(|e| ApiError::internal(e.to_string()))?;
            rec.fail_kind = None;
            rec.error = None;
            rec.updated_at = Local::now();
            self.save(&rec, Some("resubmitted".into()))
                .await
                .map_err(internal)?;
            let rec = self.drive(rec, prepared).await;
            return Ok(record_json(&rec));
        }
        Ok(record_json(&rec))
    }

    /// Rebuilds the envelope of a never-executed request: the same msgid when
    /// it never left, a new one when the gateway refused our sign-in.
    async fn reprepare(&self, rec: &mut Record) -> Result<Prepared, String> {
        let sign_no = match self.gateway.sign_no().await {
            Outcome::Ok(s) => s,
            Outcome::Rejected { err_msg, .. } => return Err(err_msg),
            Outcome::NotSent { reason } | Outcome::Unknown { reason } => return Err(reason),
        };
        let p = if rec.fail_kind == Some(FailKind::SignInRejected) {
            self.gateway
                .prepare(&rec.infno, rec.input.clone(), &rec.insuplc_admdvs, &sign_no)?
        } else {
            let msgid = MsgId::parse(&rec.msgid).map_err(|e| e.to_string())?;
            self.gateway.prepare_with(
                msgid,
                &rec.infno,
                rec.input.clone(),
                &rec.insuplc_admdvs,
                &sign_no,
            )?
        };
        rec.msgid = p.msgid.to_string();
        rec.request = Some(String::from_utf8_lossy(&p.body).into_owned());
        Ok(p)
    }

    /// Sends a `pending` (or freshly journaled `sent`) record and records the outcome; retries a request
    /// that never left (same msgid) and one refused for its sign-in (new
    /// msgid) a few times. Returns the record as it ends.
    async fn drive(self: &Arc<Self>, mut rec: Record, mut prepared: Prepared) -> Record {
        let r = resolution_of(&rec.infno);
        let mut retries = 0;
        loop {
            if rec.state == State::Pending {
                debug_assert_eq!(machine::next(rec.state, r), Action::Send);
                rec.state = machine::apply(rec.state, r, rec.fail_kind, &Event::Sending)
                    .unwrap_or(State::Sent);
                rec.attempts += 1;
                rec.updated_at = Local::now();
                rec.sent_at = Some(rec.updated_at);
                if let Err(e) = self
                    .save(&rec, Some(format!("sending {}", rec.msgid)))
                    .await
                {
                    // Nothing has left: the record stays pending and recovery fails it safely.
                    error!(error = %e, "Journal write failed before sending; not sent.");
                    rec.state = State::Pending;
                    return rec;
                }
            }
            crash::point("after_sent");
            let out = self.gateway.send(&prepared).await;
            crate::metrics::global()
                .gateway_calls
                .inc(&[&rec.infno, out.class()]);
            crash::point("after_send");
            let sign_in_refused = out.is_sign_in_rejection();
            let answer = to_answer(&out);
            rec.state = machine::apply(rec.state, r, None, &Event::Answered(answer.clone()))
                .unwrap_or(State::Unknown);
            rec.fail_kind = None;
            rec.error = None;
            match &out {
                Outcome::Ok(resp) => {
                    rec.output = resp.output.clone();
                    rec.setl_id = rec
                        .output
                        .as_ref()
                        .and_then(|o| o.pointer("/setlinfo/setl_id"))
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    info!(msgid = %rec.msgid, "Transaction succeeded.");
                }
                Outcome::Rejected { infcode, err_msg } => {
                    rec.fail_kind = Some(if sign_in_refused {
                        FailKind::SignInRejected
                    } else {
                        FailKind::Rejected
                    });
                    rec.error = Some(
                        json!({"kind": "gateway_rejected", "infcode": infcode, "err_msg": err_msg}),
                    );
                    info!(msgid = %rec.msgid, infcode, "Transaction refused by the gateway.");
                }
                Outcome::NotSent { reason } => {
                    rec.fail_kind = Some(FailKind::NotSent);
                    rec.error = Some(json!({"kind": "gateway_unreachable", "reason": reason}));
                    warn!(msgid = %rec.msgid, %reason, "Transaction not sent.");
                }
                Outcome::Unknown { reason } => {
                    rec.error = Some(json!({"kind": "outcome_unknown", "reason": reason}));
                    warn!(msgid = %rec.msgid, %reason, "Transaction outcome unknown; resolving it.");
                }
            }
            rec.updated_at = Local::now();
            if let Err(e) = self
                .save(&rec, Some(format!("answer: {}", out.class())))
                .await
            {
                fatal(&e);
            }
            crash::point("after_outcome");
            let retry = rec.state == State::Failed
                && rec.fail_kind.is_some_and(FailKind::retryable)
                && retries < NOT_SENT_RETRIES;
            if retry {
                retries += 1;
                if sign_in_refused {
                    self.gateway
                        .invalidate_sign_in(&prepared.request.sign_no)
                        .await;
                } else {
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(retries))).await;
                }
                match self.reprepare(&mut rec).await {
                    Ok(p) => prepared = p,
                    Err(reason) => {
                        warn!(%reason, "Cannot prepare a retry.");
                        return rec;
                    }
                }
                rec.state = machine::apply(rec.state, r, rec.fail_kind, &Event::Retried)
                    .unwrap_or(State::Pending);
                rec.fail_kind = None;
                continue;
            }
            if rec.state == State::Unknown {
                if r == Resolution::Surface {
                    error!(msgid = %rec.msgid, infno = %rec.infno, "Outcome unknown and the platform offers no way to resolve it: needs a person.");
                }
                self.wake.notify_one();
            }
            return rec;
        }
    }

    /// The resolver: works every unresolved record until it is final.
    async fn resolver(self: Arc<Self>) {
        loop {
            let open = match self.journal.unresolved().await {
                Ok(v) => v,
                Err(e) => {
                    error!(error = %e, "Cannot read the journal.");
                    Vec::new()
                }
            };
            let now = tokio::time::Instant::now();
            let mut next_due: Option<tokio::time::Instant> = None;
            if !open.is_empty() {
                // Look again at least each minute while anything is open, to
                // report records that stay unresolved too long.
                next_due = Some(now + STALE_CHECK);
            }
            for rec in open {
                if self.cancel.is_cancelled() {
                    return;
                }
                self.report_stale(&rec);
                let r = resolution_of(&rec.infno);
                if !matches!(machine::next(rec.state, r), Action::Resolve | Action::Renew) {
                    continue;
                }
                let due = self
                    .backoff
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&rec.txn_id)
                    .map(|(t, _)| *t);
                if let Some(d) = due
                    && d > now
                {
                    next_due = Some(next_due.map_or(d, |n| n.min(d)));
                    continue;
                }
                let lock = self.lock_for(&rec.txn_id);
                let Ok(_held) = lock.try_lock() else { continue };
                // Re-read under the lock: a submitter may have moved it on.
                let Ok(Some(rec)) = self.journal.by_txn_id(&rec.txn_id).await else {
                    continue;
                };
                let span = tracing::info_span!("txn", txn_id = %rec.txn_id, infno = %rec.infno);
                let done = self.resolve_once(rec).instrument(span).await;
                if let Some((txn_id, again)) = done {
                    let mut b = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
                    let wait = match again {
                        Again::No => {
                            b.remove(&txn_id);
                            None
                        }
                        Again::Backoff => Some(
                            b.get(&txn_id)
                                .map(|(_, w)| (*w * 2).min(RESOLVE_BACKOFF_MAX))
                                .unwrap_or(Duration::from_secs(1)),
                        ),
                        Again::After(d) => Some(d),
                    };
                    if let Some(wait) = wait {
                        let at = tokio::time::Instant::now() + wait;
                        b.insert(txn_id, (at, wait));
                        next_due = Some(next_due.map_or(at, |n| n.min(at)));
                    }
                }
            }
            let sleep = async {
                match next_due {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = sleep => {}
            }
        }
    }

    /// Logs, once, at error level, a record unresolved for [`STALE_AFTER`].
    fn report_stale(&self, rec: &Record) {
        let age = (Local::now() - rec.created_at).to_std().unwrap_or_default();
        if age < STALE_AFTER {
            return;
        }
        let mut seen = self
            .stale_reported
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if seen.insert(rec.txn_id.clone()) {
            error!(
                txn_id = %rec.txn_id,
                infno = %rec.infno,
                state = rec.state.as_str(),
                minutes = age.as_secs() / 60,
                "Transaction still unresolved: needs attention."
            );
        }
    }

    /// One resolution step; `Some((txn_id, when to try again))`.
    async fn resolve_once(self: &Arc<Self>, mut rec: Record) -> Option<(String, Again)> {
        let r = resolution_of(&rec.infno);
        match machine::next(rec.state, r) {
            Action::Renew => {
                let sign_no = match self.gateway.sign_no().await {
                    Outcome::Ok(s) => s,
                    _ => return Some((rec.txn_id, Again::Backoff)),
                };
                let p = match self.gateway.prepare(
                    &rec.infno,
                    rec.input.clone(),
                    &rec.insuplc_admdvs,
                    &sign_no,
                ) {
                    Ok(p) => p,
                    Err(e) => {
                        warn!(error = %e, "Cannot prepare a resend.");
                        return Some((rec.txn_id, Again::Backoff));
                    }
                };
                rec.msgid = p.msgid.to_string();
                rec.request = Some(String::from_utf8_lossy(&p.body).into_owned());
                rec.state = machine::apply(rec.state, r, rec.fail_kind, &Event::Renewed).ok()?;
                rec.updated_at = Local::now();
                if self
                    .save(&rec, Some("renewed for a resend".into()))
                    .await
                    .is_err()
                {
                    return Some((rec.txn_id, Again::Backoff));
                }
                let rec = self.drive(rec, p).await;
                let again = if rec.state.is_final() {
                    Again::No
                } else {
                    Again::Backoff
                };
                Some((rec.txn_id.clone(), again))
            }
            Action::Resolve => {
                let (infno, input) = match resolution_request(&rec, r) {
                    Some(x) => x,
                    None => {
                        error!("Cannot build the undo request; needs a person.");
                        return Some((rec.txn_id, Again::Backoff));
                    }
                };
                let sign_no = match self.gateway.sign_no().await {
                    Outcome::Ok(s) => s,
                    _ => return Some((rec.txn_id, Again::Backoff)),
                };
                let p = match self
                    .gateway
                    .prepare(infno, input, &rec.insuplc_admdvs, &sign_no)
                {
                    Ok(p) => p,
                    Err(e) => {
                        warn!(error = %e, "Cannot prepare the undo.");
                        return Some((rec.txn_id, Again::Backoff));
                    }
                };
                let attempts = rec.reversal.as_ref().map(|x| x.attempts).unwrap_or(0) + 1;
                rec.reversal = Some(Reversal {
                    msgid: p.msgid.to_string(),
                    infno: infno.to_string(),
                    state: "sent".into(),
                    attempts,
                });
                rec.state = machine::apply(rec.state, r, rec.fail_kind, &Event::Resolving).ok()?;
                rec.updated_at = Local::now();
                if self
                    .save(&rec, Some(format!("{infno} {} for {}", p.msgid, rec.msgid)))
                    .await
                    .is_err()
                {
                    return Some((rec.txn_id, Again::Backoff));
                }
                crash::point("after_resolving");
                info!(omsgid = %rec.msgid, msgid = %p.msgid, via = infno, attempt = attempts, "Resolving.");
                let out = self.gateway.send(&p).await;
                crate::metrics::global()
                    .gateway_calls
                    .inc(&[infno, out.class()]);
                crash::point("after_resolve_send");
                let grace_passed = rec.sent_at.is_none_or(|t| {
                    (Local::now() - t)
                        .to_std()
                        .is_ok_and(|age| age >= self.settings.reversal_grace)
                });
                let verdict = if out.is_sign_in_rejection() {
                    self.gateway.invalidate_sign_in(&sign_no).await;
                    Verdict::Retry
                } else {
                    verdict(r, &out, &rec, grace_passed)
                };
                rec.state =
                    machine::apply(rec.state, r, rec.fail_kind, &Event::Resolved(verdict)).ok()?;
                if let Some(rv) = rec.reversal.as_mut() {
                    rv.state = match verdict {
                        Verdict::Undone => "succeeded",
                        Verdict::NotFound { .. } => "not_found",
                        Verdict::Found => "found",
                        Verdict::Refused => "refused",
                        Verdict::Retry => out.class(),
                    }
                    .into();
                }
                if verdict == Verdict::Found {
                    rec.output = found_output(r, &out, &rec);
                    rec.error = None;
                }
                match (&out, rec.state) {
                    (_, State::Reversed) => info!(omsgid = %rec.msgid, "Reversed."),
                    (_, State::Succeeded) => {
                        info!(omsgid = %rec.msgid, "The lost answer was found: it took effect.")
                    }
                    (_, State::Failed) => {
                        info!(omsgid = %rec.msgid, "Proven never to have taken effect.")
                    }
                    (Outcome::Rejected { infcode, err_msg }, State::ReversalFailed) => {
                        rec.error = Some(
                            json!({"kind": "reversal_refused", "infcode": infcode, "err_msg": err_msg}),
                        );
                        error!(omsgid = %rec.msgid, infcode, err_msg = %err_msg, "Reversal refused: needs a person.");
                    }
                    _ if matches!(
                        verdict,
                        Verdict::NotFound {
                            grace_passed: false
                        }
                    ) =>
                    {
                        info!(omsgid = %rec.msgid, "Nothing to undo yet; asking again after the grace period in case the original is still on its way.");
                    }
                    _ => {
                        warn!(omsgid = %rec.msgid, outcome = out.class(), "Resolution not definitive yet; will retry.")
                    }
                }
                rec.updated_at = Local::now();
                if let Err(e) = self
                    .save(&rec, Some(format!("{infno} answer: {}", out.class())))
                    .await
                {
                    fatal(&e);
                }
                crash::point("after_resolved");
                let again = match verdict {
                    _ if rec.state.is_final() => Again::No,
                    // Ask again as soon as a late original could have landed.
                    Verdict::NotFound {
                        grace_passed: false,
                    } => {
                        let age = rec
                            .sent_at
                            .map(|t| (Local::now() - t).to_std().unwrap_or_default())
                            .unwrap_or_default();
                        Again::After(
                            self.settings.reversal_grace.saturating_sub(age)
                                + Duration::from_millis(20),
                        )
                    }
                    _ => Again::Backoff,
                };
                Some((rec.txn_id.clone(), again))
            }
            Action::Send | Action::Stop => None,
        }
    }

    /// `txn.get`.
    pub async fn get(
        &self,
        client_ref: Option<&str>,
        txn_id: Option<&str>,
    ) -> Result<Value, ApiError> {
        let internal = |e: JournalError| ApiError::internal(e.to_string());
        let rec = match (txn_id, client_ref) {
            (Some(t), _) => self.journal.by_txn_id(t).await.map_err(internal)?,
            (None, Some(c)) => self.journal.by_client_ref(c).await.map_err(internal)?,
            (None, None) => None,
        };
        rec.map(|r| record_json(&r)).ok_or_else(|| {
            ApiError::invalid_params(
                if txn_id.is_some() {
                    "txn_id"
                } else {
                    "client_ref"
                },
                "no such transaction",
            )
        })
    }

    /// `txn.list`.
    pub async fn list(
        &self,
        since: Option<&str>,
        state: Option<&str>,
        limit: usize,
    ) -> Result<Value, ApiError> {
        let since = match since {
            None => None,
            Some(s) => Some(
                chrono::DateTime::parse_from_rfc3339(s)
                    .map(|t| t.with_timezone(&Local))
                    .or_else(|_| {
                        chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                            .map_err(|_| ())
                            .and_then(|d| d.and_hms_opt(0, 0, 0).ok_or(()))
                            .and_then(|d| d.and_local_timezone(Local).single().ok_or(()))
                    })
                    .map_err(|_| {
                        ApiError::invalid_params("since", "must be RFC 3339 or yyyy-MM-dd")
                    })?,
            ),
        };
        let state = match state {
            None => None,
            Some(s) => Some(State::parse(s).ok_or_else(|| {
                ApiError::invalid_params(
                    "state",
                    format!(
                        "must be one of {}",
                        State::ALL.map(State::as_str).join(", ")
                    ),
                )
            })?),
        };
        let recs = self
            .journal
            .list(since, state, limit)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(Value::Array(recs.iter().map(record_json).collect()))
    }

    /// `report.usage`.
    pub async fn usage(
        &self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Value, ApiError> {
        let rows = self
            .journal
            .usage(from, to)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let mut by_cert: std::collections::BTreeMap<String, u64> = ["01", "02", "03"]
            .into_iter()
            .map(|c| (c.to_string(), 0))
            .collect();
        let mut by_day: std::collections::BTreeMap<chrono::NaiveDate, (u64, u64)> =
            Default::default();
        for r in &rows {
            *by_cert.entry(r.mdtrt_cert_type.clone()).or_default() += r.count;
            let d = by_day.entry(r.date).or_default();
            d.0 += r.count;
            if r.mdtrt_cert_type == "01" {
                d.1 += r.count;
            }
        }
        let total: u64 = by_cert.values().sum();
        let rate = if total == 0 {
            0.0
        } else {
            (by_cert["01"] as f64 / total as f64 * 10_000.0).round() / 10_000.0
        };
        Ok(json!({
            "from": from.to_string(),
            "to": to.to_string(),
            "settlements": {"total": total, "by_cert_type": by_cert},
            "medical_code_rate": rate,
            "by_day": by_day.iter().map(|(d, (t, m))| json!({"date": d.to_string(), "total": t, "medical_code": m})).collect::<Vec<_>>(),
        }))
    }

    fn fill(&self, spec: &TxnSpec, s: &Submit) -> Result<Filled, ApiError> {
        let mut input = s.input.clone();
        let session = match &s.session_id {
            Some(id) => Some(
                self.sessions
                    .get(id)
                    .ok_or_else(|| ApiError::session_expired(id))?,
            ),
            None => None,
        };
        let wants = |field: &str| {
            spec.required
                .iter()
                .any(|r| r.ends_with(&format!(".{field}")))
        };
        if let Some(ses) = &session {
            let set = |obj: &mut Map<String, Value>, k: &str, v: &str| {
                let empty = match obj.get(k) {
                    None | Some(Value::Null) => true,
                    Some(Value::String(x)) => x.is_empty(),
                    _ => false,
                };
                if empty && !v.is_empty() {
                    obj.insert(k.to_string(), Value::String(v.to_string()));
                }
            };
            let node = input.entry(spec.node.to_string()).or_insert_with(|| {
                if spec
                    .required
                    .iter()
                    .any(|r| r.starts_with(&format!("{}[]", spec.node)))
                {
                    Value::Array(vec![])
                } else {
                    Value::Object(Map::new())
                }
            });
            let mut fill_obj = |o: &mut Map<String, Value>| {
                set(o, "psn_no", &ses.psn_no);
                if wants("mdtrt_cert_type") {
                    set(o, "mdtrt_cert_type", &ses.credential.mdtrt_cert_type);
                    set(o, "mdtrt_cert_no", &ses.credential.mdtrt_cert_no);
                    if let Some(sn) = &ses.credential.card_sn {
                        set(o, "card_sn", sn);
                    }
                }
                if wants("insutype") && ses.insutypes.len() == 1 {
                    set(o, "insutype", &ses.insutypes[0]);
                }
            };
            match node {
                Value::Object(o) => fill_obj(o),
                Value::Array(items) => items
                    .iter_mut()
                    .filter_map(Value::as_object_mut)
                    .for_each(&mut fill_obj),
                _ => {
                    return Err(ApiError::invalid_params(
                        &format!("input.{}", spec.node),
                        "must be an object or a list",
                    ));
                }
            }
        }
        let input_v = Value::Object(input.clone());
        let psn_no = settlement_client::envelope::input_names_psn_no(&input_v).map(str::to_string);
        let insuplc_admdvs = s
            .insuplc_admdvs
            .clone()
            .or_else(|| session.as_ref().map(|x| x.insuplc_admdvs.clone()))
            .unwrap_or_default();
        let node_field = |k: &str| -> Option<String> {
            input
                .get(spec.node)
                .and_then(|n| n.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let mdtrt_cert_type = node_field("mdtrt_cert_type")
            .or_else(|| {
                session
                    .as_ref()
                    .map(|x| x.credential.mdtrt_cert_type.clone())
            })
            .unwrap_or_default();
        Ok(Filled {
            input_names_psn_no: psn_no.is_some(),
            psn_no: psn_no.unwrap_or_default(),
            insuplc_admdvs,
            mdtrt_cert_type,
            input,
        })
    }
}

/// When the resolver should look at a record again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Again {
    /// Never: it is final (or needs a person).
    No,
    /// After the next back-off step (1 s doubling up to 60 s).
    Backoff,
    /// After this long.
    After(Duration),
}

struct Filled {
    input: Map<String, Value>,
    insuplc_admdvs: String,
    psn_no: String,
    mdtrt_cert_type: String,
    input_names_psn_no: bool,
}

fn resolution_of(infno: &str) -> Resolution {
    catalogue::spec(infno)
        .map(machine::resolution)
        .unwrap_or(Resolution::Surface)
}

fn to_answer<T>(o: &Outcome<T>) -> Answer {
    match o {
        Outcome::Ok(_) => Answer::Ok,
        Outcome::Rejected { err_msg, .. } => Answer::Rejected(err_msg.clone()),
        Outcome::NotSent { .. } => Answer::NotSent,
        Outcome::Unknown { .. } => Answer::Unknown,
    }
}

/// Platform messages of a cancel that finds nothing to cancel [guess: the
/// simulator's wording; real gateways word it their own way].
const UNDO_NOTHING: &[&str] = &["未找到", "不存在", "未办理"];

/// A field of the first object of `node` (an object or a list) of the input.
fn first_field(rec: &Record, node: &str, k: &str) -> String {
    let v = match rec.input.get(node) {
        Some(Value::Array(a)) => a.first().and_then(|x| x.get(k)),
        Some(o) => o.get(k),
        None => None,
    };
    v.and_then(Value::as_str).unwrap_or_default().to_string()
}

/// The request that resolves `rec`: 2601 by msgid, its own cancel, or a query.
fn resolution_request(rec: &Record, r: Resolution) -> Option<(&'static str, Value)> {
    let f = |node: &str, k: &str| first_field(rec, node, k);
    match r {
        Resolution::Reverse => Some((
            "2601",
            json!({"data": {"psn_no": rec.psn_no, "omsgid": rec.msgid, "oinfno": rec.infno}}),
        )),
        Resolution::Undo("2205") => Some((
            "2205",
            json!({"data": {"mdtrt_id": f("feedetail", "mdtrt_id"), "chrg_bchno": f("feedetail", "chrg_bchno"), "psn_no": rec.psn_no}}),
        )),
        Resolution::Undo("2405") => Some((
            "2405",
            json!({"data": {"mdtrt_id": f("dscginfo", "mdtrt_id"), "psn_no": rec.psn_no}}),
        )),
        Resolution::Query("5201") => Some((
            "5201",
            json!({"data": {"psn_no": rec.psn_no, "begntime": f("data", "begntime"), "med_type": f("data", "med_type")}}),
        )),
        Resolution::Query("5204") => Some((
            "5204",
            json!({"data": {"psn_no": rec.psn_no, "mdtrt_id": f("feedetail", "mdtrt_id")}}),
        )),
        _ => None,
    }
}

/// The `feedetl_sn`s a fee upload carried.
fn uploaded_lines(rec: &Record) -> Vec<String> {
    rec.input
        .get("feedetail")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|l| l.get("feedetl_sn"))
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What a resolution answer establishes about the original.
fn verdict(r: Resolution, out: &Outcome<Response>, rec: &Record, grace_passed: bool) -> Verdict {
    let not_found = Verdict::NotFound { grace_passed };
    match r {
        Resolution::Reverse => match ReversalAnswer::of(out) {
            ReversalAnswer::Reversed | ReversalAnswer::AlreadyReversed => Verdict::Undone,
            ReversalAnswer::NothingToReverse => not_found,
            ReversalAnswer::RefusedCancelled { .. } | ReversalAnswer::Refused { .. } => {
                Verdict::Refused
            }
            ReversalAnswer::Retry { .. } => Verdict::Retry,
        },
        Resolution::Undo(_) => match out {
            Outcome::Ok(_) => Verdict::Undone,
            Outcome::Rejected { err_msg, .. }
                if UNDO_NOTHING.iter().any(|p| err_msg.contains(p)) =>
            {
                not_found
            }
            Outcome::Rejected { .. } => Verdict::Refused,
            _ => Verdict::Retry,
        },
        Resolution::Query(q) => match out {
            Outcome::Ok(resp) => {
                let o = resp.output.clone().unwrap_or(Value::Null);
                if q == "5201" {
                    let otp = first_field(rec, "data", "ipt_otp_no");
                    let hit = o["mdtrtinfo"].as_array().is_some_and(|a| {
                        a.iter()
                            .any(|v| v["ipt_otp_no"].as_str() == Some(otp.as_str()))
                    });
                    if hit { Verdict::Found } else { not_found }
                } else {
                    let want = uploaded_lines(rec);
                    let have: Vec<String> = o["feedetail"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|l| l["feedetl_sn"].as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    let present = want.iter().filter(|w| have.contains(w)).count();
                    match present {
                        0 => not_found,
                        n if n == want.len() => Verdict::Found,
                        // Part of one upload: something else touched the lines.
                        _ => Verdict::Refused,
                    }
                }
            }
            Outcome::Rejected { err_msg, .. }
                if UNDO_NOTHING.iter().any(|p| err_msg.contains(p)) =>
            {
                not_found
            }
            _ => Verdict::Retry,
        },
        Resolution::Resend | Resolution::Surface => Verdict::Retry,
    }
}

/// The output a found original is recorded with.
fn found_output(r: Resolution, out: &Outcome<Response>, rec: &Record) -> Option<Value> {
    let Outcome::Ok(resp) = out else { return None };
    let o = resp.output.clone().unwrap_or(Value::Null);
    match r {
        Resolution::Query("5201") => {
            let otp = first_field(rec, "data", "ipt_otp_no");
            let v = o["mdtrtinfo"]
                .as_array()?
                .iter()
                .find(|v| v["ipt_otp_no"].as_str() == Some(otp.as_str()))?
                .clone();
            Some(
                json!({"data": {"mdtrt_id": v["mdtrt_id"], "psn_no": v["psn_no"], "ipt_otp_no": v["ipt_otp_no"]}, "found_by": "5201"}),
            )
        }
        Resolution::Query(_) => {
            let want = uploaded_lines(rec);
            let lines: Vec<Value> = o["feedetail"]
                .as_array()?
                .iter()
                .filter(|l| {
                    l["feedetl_sn"]
                        .as_str()
                        .is_some_and(|sn| want.iter().any(|w| w == sn))
                })
                .cloned()
                .collect();
            Some(json!({"result": lines, "found_by": "5204"}))
        }
        _ => None,
    }
}

/// Keys of JSON objects sorted recursively, so the same request hashes the
/// same whatever order the client wrote its fields in.
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), canonical(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

fn request_hash(s: &Submit) -> String {
    let v = json!({
        "infno": s.infno,
        "input": canonical(&Value::Object(s.input.clone())),
        "session_id": s.session_id,
        "insuplc_admdvs": s.insuplc_admdvs,
    });
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        v.to_string().as_bytes(),
    ))
}

/// What makes two settlements "the same sale" (gateway.md §5 rule 3).
fn sale_key(spec: &TxnSpec, input: &Map<String, Value>) -> Option<String> {
    let s = |node: &str, k: &str| -> String {
        input
            .get(node)
            .and_then(|n| n.get(k))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default()
    };
    if spec.cancels.is_some() {
        return Some(format!("cancel|{}", s("data", "setl_id")));
    }
    if !spec.settlement {
        return None;
    }
    Some(match spec.infno {
        "2102" => {
            let mut sns: Vec<String> = input
                .get("drugdetail")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|d| d.get("feedetl_sn"))
                        .map(|v| v.to_string())
                        .collect()
                })
                .unwrap_or_default();
            sns.sort();
            format!(
                "2102|{}|{}|{}",
                s("druginfo", "psn_no"),
                s("druginfo", "medfee_sumamt"),
                sns.join(",")
            )
        }
        "2207" => format!("2207|{}|{}", s("data", "mdtrt_id"), s("data", "chrg_bchno")),
        other => format!("{other}|{}", s("data", "mdtrt_id")),
    })
}

/// The API form of a record (local-api.md "Transaction record").
pub fn record_json(r: &Record) -> Value {
    let t = |d: &chrono::DateTime<Local>| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, false);
    json!({
        "txn_id": r.txn_id,
        "client_ref": r.client_ref,
        "infno": r.infno,
        "msgid": r.msgid,
        "state": r.state.as_str(),
        "created_at": t(&r.created_at),
        "updated_at": t(&r.updated_at),
        "output": r.output,
        "error": r.error,
        "reversal": r.reversal.as_ref().map(|x| json!({"msgid": x.msgid, "infno": x.infno, "state": x.state, "attempts": x.attempts})),
        "attempts": r.attempts,
    })
}
