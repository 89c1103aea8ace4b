//! The engine at work: `txn.submit`, the resolver of unknown outcomes, and
//! recovery at start-up. The decisions are [`super::policy`]'s; this module
//! sends, journals and waits.
//!
//! Order of every request: journal the record with its msgid and full
//! request as `sent` (one synced write) → post → journal the outcome
//! (synced). A crash anywhere leaves a record whose state says what may have
//! happened, and recovery acts on it before the daemon
//! reports ready. Unknown outcomes of reversible transactions are reversed
//! with 2601 under the original msgid, with back-off, until definitive; no
//! record ever gets a new msgid while an older attempt may be in effect.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Local, NaiveDate};
use serde_json::Value;
use settlement_client::envelope::Response;
use settlement_client::gateway::Prepared;
use settlement_client::msgid::MsgId;
use settlement_client::{Gateway, Outcome};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, error, info, warn};

use super::machine::{self, Action, Event, FailKind, State};
use super::policy::{self, resolution_of};
use super::report::{self, Usage};
use super::request::{self, Filled, Submit};
use super::{TxnError, TxnKey, crash};
use crate::events::EventBus;
use crate::journal::{Closure, Counts, Inserted, Journal, JournalError, Record};
use crate::sessions::Sessions;

/// Times a never-sent request is retried within one `txn.submit`.
const NOT_SENT_RETRIES: u32 = 2;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// "Nothing to reverse" is believed only this long after the original
    /// was sent (monotonic time): a slow original can arrive after its
    /// reversal. Undos (2601, own cancels) are first tried after it.
    pub reversal_grace: Duration,
    /// Unclear answers (unknown refusal texts, query answers without their
    /// list) tried before a record is handed to a person.
    pub max_unclear_answers: u32,
}

impl EngineSettings {
    /// From the config: `journal.reversal_grace_ms`, by default twice the
    /// gateway request timeout; `journal.max_unclear_answers`.
    pub fn from_config(cfg: &ybpos_config::Config) -> Self {
        EngineSettings {
            reversal_grace: cfg
                .journal
                .reversal_grace
                .unwrap_or(cfg.gateway.request_timeout * 2),
            max_unclear_answers: cfg.journal.max_unclear_answers,
        }
    }
}

/// Whether a record may be sent now.
enum Gate {
    /// Journaled as sent: send it.
    Go,
    /// Another attempt of the sale blocks it; nothing was written.
    Blocked(TxnError),
    /// The journal write failed; nothing was sent.
    JournalFailed,
}

/// The error a client gets when a sale is blocked by `other`.
fn blocked(other: &Record, why: policy::Blocker) -> TxnError {
    let txn_id = other.txn_id.clone();
    match why {
        policy::Blocker::InEffect => TxnError::AlreadySettled { txn_id },
        policy::Blocker::InDoubt => TxnError::SaleUnresolved { txn_id },
    }
}

/// The money engine.
#[derive(Debug)]
pub struct Engine {
    pub(super) settings: EngineSettings,
    pub(super) journal: Journal,
    pub(super) gateway: Arc<Gateway>,
    sessions: Arc<Sessions>,
    events: EventBus,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// When each record is due again in the resolver, and its last back-off.
    pub(super) backoff: Mutex<HashMap<String, (tokio::time::Instant, Duration)>>,
    /// Records already reported as stale (reported once).
    pub(super) stale_reported: Mutex<HashSet<String>>,
    /// Wakes the resolver when a new unknown outcome appears.
    pub(super) wake: Notify,
    /// When each record was last sent, on the monotonic clock.
    sent_mono: Mutex<HashMap<String, tokio::time::Instant>>,
    pub(super) cancel: CancellationToken,
    tracker: TaskTracker,
}

/// Stops the process after a journal write failed once a request may have left.
pub(super) fn fatal(e: &JournalError) -> ! {
    // The request may have left: without the journal we cannot promise
    // anything. Die; recovery at the next start resolves the record.
    error!(error = %e, "Journal write failed after a request left; stopping so recovery can resolve it.");
    std::process::abort()
}

/// The envelope body as journaled.
pub(super) fn body_text(p: &Prepared) -> Option<String> {
    Some(String::from_utf8_lossy(&p.body).into_owned())
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
            sent_mono: Mutex::new(HashMap::new()),
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
        })
    }

    /// The journal (for reports).
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// How long ago `rec` was last sent, on the monotonic clock. After a
    /// restart it counts from what the journal kept (`sent_elapsed_ms`):
    /// time while the daemon was down is not counted, so the grace period
    /// can only get longer, never shorter.
    pub(super) fn age(&self, rec: &Record) -> Duration {
        let now = tokio::time::Instant::now();
        let mut m = self.sent_mono.lock().unwrap_or_else(|e| e.into_inner());
        let base = *m.entry(rec.txn_id.clone()).or_insert_with(|| {
            now.checked_sub(Duration::from_millis(rec.sent_elapsed_ms))
                .unwrap_or(now)
        });
        now.saturating_duration_since(base)
    }

    /// Notes that `txn_id` is being sent now.
    fn sending_now(&self, txn_id: &str) {
        self.sent_mono
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(txn_id.to_string(), tokio::time::Instant::now());
    }

    /// Forgets the send time of a record that is final.
    pub(super) fn forget(&self, txn_id: &str) {
        self.sent_mono
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(txn_id);
    }

    /// The lock that serialises work on one record (submitter vs resolver).
    pub(super) fn lock_for(&self, txn_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, l| Arc::strong_count(l) > 1);
        Arc::clone(m.entry(txn_id.to_string()).or_default())
    }

    /// Start-up: resumes the msgid allocator past every journaled id, turns
    /// interrupted records into their recovered states, and starts the
    /// resolver. Returns how many records were unresolved.
    pub async fn recover(self: &Arc<Self>) -> Result<usize, JournalError> {
        self.resume_msgids().await?;
        let open = self.journal.unresolved().await?;
        let n = open.len();
        let now = Local::now();
        // All saves queued at once: the journal commits what is queued
        // together (one sync per batch), so a power cut with a thousand
        // requests in flight costs a few syncs before READY, not a thousand.
        let saves = open.into_iter().map(|mut rec| async move {
            if let Some(before) = policy::recovered(&mut rec, now) {
                self.save(&rec, Some(format!("recovered from {}", before.as_str())))
                    .await?;
            }
            info!(txn_id = %rec.txn_id, infno = %rec.infno, state = rec.state.as_str(), "Recovered a transaction.");
            Ok::<(), JournalError>(())
        });
        futures_util::future::try_join_all(saves).await?;
        let me = Arc::clone(self);
        self.tracker
            .spawn(async move { me.resolver().await }.instrument(tracing::info_span!("resolver")));
        Ok(n)
    }

    /// Resumes the msgid allocator after every id a journaled record used
    /// and after the second this run claims.
    async fn resume_msgids(&self) -> Result<(), JournalError> {
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
        Ok(())
    }

    /// Stops the resolver (records stay journaled for the next start).
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Counts for `system.info` and metrics.
    pub async fn counts(&self) -> Result<Counts, JournalError> {
        let stale =
            Local::now() - chrono::Duration::from_std(super::STALE_AFTER).unwrap_or_default();
        self.journal.counts(stale).await
    }

    /// Journals `rec` (synced), counts and publishes its state.
    pub(super) async fn save(
        &self,
        rec: &Record,
        detail: Option<String>,
    ) -> Result<(), JournalError> {
        let mut rec = rec.clone();
        if rec.sent_at.is_some() {
            rec.sent_elapsed_ms = self.age(&rec).as_millis() as u64;
        }
        self.journal.save(rec.clone(), detail).await?;
        if rec.state.is_final() && rec.fail_kind != Some(FailKind::Unconfirmed) {
            self.forget(&rec.txn_id);
        }
        let rec = &rec;
        crate::metrics::global()
            .txn_states
            .inc(&[&rec.infno, rec.state.as_str()]);
        self.publish(rec);
        Ok(())
    }

    fn publish(&self, rec: &Record) {
        self.events.publish(crate::events::Event::Txn {
            txn_id: rec.txn_id.clone(),
            client_ref: rec.client_ref.clone(),
            infno: rec.infno.clone(),
            state: rec.state,
        });
    }

    /// `txn.get`.
    pub async fn get(&self, key: &TxnKey) -> Result<Record, TxnError> {
        report::get(&self.journal, key).await
    }

    /// `txn.list`: newest first; with `needs_person` only what a person must
    /// look at (handed over, or open for longer than [`super::STALE_AFTER`]).
    pub async fn list(
        &self,
        since: Option<DateTime<Local>>,
        state: Option<State>,
        needs_person: bool,
        limit: usize,
    ) -> Result<Vec<Record>, TxnError> {
        let stale = needs_person.then(|| {
            Local::now() - chrono::Duration::from_std(super::STALE_AFTER).unwrap_or_default()
        });
        report::list(&self.journal, since, state, stale, limit).await
    }

    /// `txn.resolve`: a person closes a record the machine could not finish,
    /// with who and why in the journal.
    pub async fn close(&self, txn_id: &str, closure: Closure) -> Result<Record, TxnError> {
        let lock = self.lock_for(txn_id);
        let _held = lock.lock().await;
        let key = TxnKey::TxnId(txn_id.to_string());
        let mut rec = report::get(&self.journal, &key).await?;
        let from = rec.state;
        policy::close(&mut rec, closure.clone()).map_err(|_| TxnError::NotClosable {
            txn_id: rec.txn_id.clone(),
            state: from,
        })?;
        warn!(
            txn_id = %rec.txn_id,
            from = from.as_str(),
            to = rec.state.as_str(),
            operator = %closure.operator,
            "A person closed a transaction."
        );
        self.save(
            &rec,
            Some(format!(
                "closed by {} from {}: {}",
                closure.operator,
                from.as_str(),
                closure.note
            )),
        )
        .await?;
        self.forget(&rec.txn_id);
        Ok(rec)
    }

    /// `report.usage`.
    pub async fn usage(&self, from: NaiveDate, to: NaiveDate) -> Result<Usage, TxnError> {
        report::usage(&self.journal, from, to).await
    }

    /// `txn.submit`: the record as it ends (or as it stands while the
    /// daemon resolves it).
    pub async fn submit(self: &Arc<Self>, s: Submit) -> Result<Record, TxnError> {
        let span = tracing::info_span!("txn", client_ref = %s.client_ref, infno = %s.infno, txn_id = tracing::field::Empty);
        self.submit_inner(s).instrument(span).await
    }

    async fn submit_inner(self: &Arc<Self>, s: Submit) -> Result<Record, TxnError> {
        let spec = request::spec_for(&s.infno)?;
        let hash = request::request_hash(&s);
        if let Some(existing) = self.journal.by_client_ref(&s.client_ref).await? {
            return self.resubmitted(existing, &hash).await;
        }
        // Fill from the session, then check what the platform requires.
        let session = match &s.session_id {
            Some(id) => Some(
                self.sessions
                    .get(id)
                    .ok_or_else(|| TxnError::SessionExpired(id.clone()))?,
            ),
            None => None,
        };
        let filled = request::fill(spec, &s, session.as_ref())?;
        filled.check(spec)?;
        let sign_no = self.sign_no().await.map_err(TxnError::GatewayUnreachable)?;
        let prepared = self
            .gateway
            .prepare(
                &s.infno,
                Value::Object(filled.input.clone()),
                &filled.insuplc_admdvs,
                &sign_no,
            )
            .map_err(TxnError::Prepare)?;
        let rec = new_record(&s, spec, hash.clone(), filled, &prepared);
        tracing::Span::current().record("txn_id", rec.txn_id.as_str());
        let lock = self.lock_for(&rec.txn_id);
        let _held = lock.lock().await;
        crash::point("before_journal");
        match self.journal.insert(rec.clone(), policy::blocks).await? {
            Inserted::New => {}
            Inserted::Existing(e) => {
                drop(_held);
                return self.resubmitted(*e, &hash).await;
            }
            Inserted::Blocked(other, why) => return Err(blocked(&other, why)),
        }
        self.sending_now(&rec.txn_id);
        self.publish(&rec);
        crash::point("after_journal");
        info!(msgid = %rec.msgid, "Transaction journaled.");
        self.drive(rec, prepared).await
    }

    /// A sign-in number, signing in when needed; `Err` says why not.
    pub(super) async fn sign_no(&self) -> Result<String, String> {
        match self.gateway.sign_no().await {
            Outcome::Ok(s) => Ok(s),
            Outcome::Rejected { err_msg, .. } => Err(format!("sign-in refused: {err_msg}")),
            Outcome::NotSent { reason } | Outcome::Unknown { reason } => Err(reason),
        }
    }

    /// The same client_ref again: same body → the record (after any in-flight
    /// work on it ends); a never-sent one is sent again; different body → error.
    async fn resubmitted(
        self: &Arc<Self>,
        existing: Record,
        hash: &str,
    ) -> Result<Record, TxnError> {
        if existing.request_hash != hash {
            return Err(TxnError::DuplicateClientRef(existing.client_ref));
        }
        let lock = self.lock_for(&existing.txn_id);
        let _held = lock.lock().await;
        let mut rec = self
            .journal
            .by_txn_id(&existing.txn_id)
            .await?
            .ok_or(TxnError::Vanished)?;
        if !(rec.state == State::Failed && rec.fail_kind.is_some_and(FailKind::retryable)) {
            return Ok(rec);
        }
        info!(txn_id = %rec.txn_id, "Resubmitted a never-sent transaction; sending it again.");
        let prepared = self
            .reprepare(&mut rec)
            .await
            .map_err(TxnError::GatewayUnreachable)?;
        rec.state = machine::apply(
            rec.state,
            resolution_of(&rec.infno),
            rec.fail_kind,
            &Event::Retried,
        )?;
        rec.fail_kind = None;
        rec.error = None;
        // Journaled as sent by `drive`, with the sale check: a resubmission
        // is checked as a first attempt is.
        self.drive(rec, prepared).await
    }

    /// Rebuilds the envelope of a never-executed request: the same msgid when
    /// it never left, a new one when the gateway refused our sign-in or the
    /// msgid itself.
    async fn reprepare(&self, rec: &mut Record) -> Result<Prepared, String> {
        let sign_no = match self.gateway.sign_no().await {
            Outcome::Ok(s) => s,
            Outcome::Rejected { err_msg, .. } => return Err(err_msg),
            Outcome::NotSent { reason } | Outcome::Unknown { reason } => return Err(reason),
        };
        let p = if rec.fail_kind.is_some_and(FailKind::needs_new_msgid) {
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
        rec.request = body_text(&p);
        Ok(p)
    }

    /// Sends a `pending` (or freshly journaled `sent`) record and records the
    /// outcome; retries a request that never left (same msgid) and one
    /// refused for its sign-in or msgid (new msgid) a few times. Every send
    /// is journaled first, with the sale check. Returns the record as it
    /// ends, or why the sale blocks a retry (the record stays as it was).
    pub(super) async fn drive(
        self: &Arc<Self>,
        mut rec: Record,
        mut prepared: Prepared,
    ) -> Result<Record, TxnError> {
        let r = resolution_of(&rec.infno);
        let mut retries = 0;
        loop {
            if rec.state == State::Pending {
                match self.journal_sending(&mut rec).await {
                    Gate::Go => {}
                    Gate::Blocked(e) => return Err(e),
                    Gate::JournalFailed => return Ok(rec),
                }
            }
            crash::point("after_sent");
            let out = self.gateway.send(&prepared).await;
            crate::metrics::global()
                .gateway_calls
                .inc(&[&rec.infno, out.class()]);
            crash::point("after_send");
            let sign_in_refused = policy::answered(&mut rec, &out);
            log_answer(&rec, &out);
            rec.updated_at = Local::now();
            if let Err(e) = self
                .save(&rec, Some(format!("answer: {}", out.class())))
                .await
            {
                fatal(&e);
            }
            crash::point("after_outcome");
            if rec.fail_kind == Some(FailKind::DuplicateMsgid) {
                crate::metrics::global().msgid_collisions.inc(&[]);
                error!(msgid = %rec.msgid, "The gateway refused the msgid as used before: another terminal of this institution uses the same msgids (set terminal.terminals and a different terminal.msgid_node on each). Sending again under a new msgid; the refused one is never reversed.");
            }
            let retry = rec.state == State::Failed
                && rec.fail_kind.is_some_and(FailKind::retryable)
                && retries < NOT_SENT_RETRIES;
            if retry {
                retries += 1;
                if sign_in_refused {
                    self.gateway
                        .invalidate_sign_in(&prepared.request.sign_no)
                        .await;
                } else if rec.fail_kind == Some(FailKind::NotSent) {
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(retries))).await;
                }
                match self.reprepare(&mut rec).await {
                    Ok(p) => prepared = p,
                    Err(reason) => {
                        warn!(%reason, "Cannot prepare a retry.");
                        return Ok(rec);
                    }
                }
                rec.state = machine::apply(rec.state, r, rec.fail_kind, &Event::Retried)
                    .unwrap_or(State::Pending);
                rec.fail_kind = None;
                continue;
            }
            if rec.state == State::Unknown || rec.fail_kind == Some(FailKind::Unconfirmed) {
                self.wake.notify_one();
            }
            if rec.state == State::ReversalFailed {
                error!(msgid = %rec.msgid, infno = %rec.infno, "Outcome unknown and the platform offers no way to resolve it: needs a person.");
            }
            return Ok(rec);
        }
    }

    /// Journals a `pending` record as `sent` before its request leaves, in
    /// one transaction with the sale check.
    async fn journal_sending(&self, rec: &mut Record) -> Gate {
        let r = resolution_of(&rec.infno);
        debug_assert_eq!(machine::next(rec.state, r, rec.fail_kind), Action::Send);
        let before = rec.clone();
        rec.state =
            machine::apply(rec.state, r, rec.fail_kind, &Event::Sending).unwrap_or(State::Sent);
        rec.attempts += 1;
        rec.updated_at = Local::now();
        rec.sent_at = Some(rec.updated_at);
        rec.sent_elapsed_ms = 0;
        let detail = format!("sending {}", rec.msgid);
        match self
            .journal
            .mark_sent(rec.clone(), detail, policy::blocks)
            .await
        {
            Ok(None) => {
                self.sending_now(&rec.txn_id);
                crate::metrics::global()
                    .txn_states
                    .inc(&[&rec.infno, rec.state.as_str()]);
                self.publish(rec);
                Gate::Go
            }
            Ok(Some((other, why))) => {
                info!(other = %other.txn_id, "Not sent again: another attempt of this sale is in effect or in doubt.");
                *rec = before;
                Gate::Blocked(blocked(&other, why))
            }
            Err(e) => {
                // Nothing has left: the record stays as journaled before; the
                // resolver (or recovery) fails a pending one safely.
                error!(error = %e, "Journal write failed before sending; not sent.");
                *rec = before;
                Gate::JournalFailed
            }
        }
    }
}

/// A new record for a submission, journaled as `sent` before it leaves.
fn new_record(
    s: &Submit,
    spec: &settlement_client::catalogue::TxnSpec,
    request_hash: String,
    filled: Filled,
    prepared: &Prepared,
) -> Record {
    let now = Local::now();
    Record {
        txn_id: format!(
            "txn_{}_{:08x}",
            now.format("%Y%m%d%H%M%S"),
            rand::random::<u32>()
        ),
        client_ref: s.client_ref.clone(),
        infno: s.infno.clone(),
        request_hash,
        session_id: s.session_id.clone(),
        sale_key: request::sale_key(spec, &filled.input),
        cancels_setl_id: request::cancelled_setl_id(spec, &filled.input),
        input: Value::Object(filled.input),
        insuplc_admdvs: filled.insuplc_admdvs,
        psn_no: filled.psn_no,
        mdtrt_cert_type: filled.mdtrt_cert_type,
        msgid: prepared.msgid.to_string(),
        request: body_text(prepared),
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
        sent_at: Some(now),
        sent_elapsed_ms: 0,
        resent_after_unknown: false,
        unclear_answers: 0,
        closed: None,
        created_at: now,
        updated_at: now,
    }
}

/// Logs the answer to a record's own request.
fn log_answer(rec: &Record, out: &Outcome<Response>) {
    match out {
        Outcome::Ok(_) => info!(msgid = %rec.msgid, "Transaction succeeded."),
        Outcome::Rejected { infcode, .. } => {
            info!(msgid = %rec.msgid, infcode, "Transaction refused by the gateway.")
        }
        Outcome::NotSent { reason } => warn!(msgid = %rec.msgid, %reason, "Transaction not sent."),
        Outcome::Unknown { reason } => {
            warn!(msgid = %rec.msgid, %reason, "Transaction outcome unknown; resolving it.")
        }
    }
}
