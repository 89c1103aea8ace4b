//! The resolver: works every record that still needs work until it is
//! final or with a person — 2601, an own cancel or a query for unknown
//! outcomes (undos only once the grace period has passed), a resend under a
//! new msgid for side-effect-free ones, a 2601 probe for refused
//! settlements — several at a time, with back-off, and reports records that
//! stay unresolved too long. [`super::policy`] decides; this module sends,
//! journals and waits.

use std::sync::Arc;
use std::time::Duration;

use chrono::Local;
use futures_util::StreamExt;
use settlement_client::Outcome;
use settlement_client::envelope::Response;
use settlement_client::reversal;
use tracing::{Instrument, error, info, warn};

use super::crash;
use super::machine::{self, Action, Event, FailKind, State, Verdict};
use super::policy::{self, Again, resolution_of};
use super::runtime::{Engine, body_text, fatal};
use crate::journal::{Record, Reversal};

/// An unresolved record older than this is reported as stale (error log, metric).
pub const STALE_AFTER: Duration = Duration::from_secs(10 * 60);

/// How often the resolver looks at open records that have nothing due.
const STALE_CHECK: Duration = Duration::from_secs(60);

/// Records resolved at the same time (bounded, so a journal of many
/// unknown outcomes does not flood the gateway).
const CONCURRENCY: usize = 8;

/// How long the resolver waits after it could not read the journal.
const READ_RETRY: Duration = Duration::from_secs(1);

/// What one resolution step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// 2601, an own cancel or a query.
    Resolve,
    /// A 2601 probe of a refused settlement.
    Probe,
}

impl Engine {
    /// The resolver: works every unresolved record until it is final.
    pub(super) async fn resolver(self: Arc<Self>) {
        loop {
            let next_due = match self.journal.unresolved().await {
                Ok(open) => self.pass(open).await,
                Err(e) => {
                    // Never an empty list: look again soon.
                    error!(error = %e, "Cannot read the journal; trying again.");
                    Some(tokio::time::Instant::now() + READ_RETRY)
                }
            };
            if self.cancel.is_cancelled() {
                return;
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

    /// One pass over the open records, [`CONCURRENCY`] at a time; returns
    /// when the next record is due.
    async fn pass(self: &Arc<Self>, open: Vec<Record>) -> Option<tokio::time::Instant> {
        let now = tokio::time::Instant::now();
        // Look again at least each minute while anything is open, to
        // report records that stay unresolved too long.
        let floor = (!open.is_empty()).then(|| now + STALE_CHECK);
        let dues: Vec<Option<tokio::time::Instant>> = futures_util::stream::iter(open)
            .map(|rec| async move {
                if self.cancel.is_cancelled() {
                    return None;
                }
                self.work_on(rec, now).await
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        dues.into_iter().flatten().chain(floor).min()
    }

    /// One record in the resolver's pass: resolves it if due and free;
    /// returns when it is due again, if ever.
    async fn work_on(
        self: &Arc<Self>,
        rec: Record,
        now: tokio::time::Instant,
    ) -> Option<tokio::time::Instant> {
        self.report_stale(&rec);
        let r = resolution_of(&rec.infno);
        let action = machine::next(rec.state, r, rec.fail_kind);
        if !matches!(
            action,
            Action::Resolve | Action::Renew | Action::Probe | Action::Send
        ) {
            return None;
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
            return Some(d);
        }
        let lock = self.lock_for(&rec.txn_id);
        let Ok(_held) = lock.try_lock() else {
            return None;
        };
        // Re-read under the lock: a submitter may have moved it on.
        let Ok(Some(rec)) = self.journal.by_txn_id(&rec.txn_id).await else {
            return None;
        };
        let span = tracing::info_span!("txn", txn_id = %rec.txn_id, infno = %rec.infno);
        let txn_id = rec.txn_id.clone();
        let again = self.resolve_once(rec).instrument(span).await?;
        self.schedule(txn_id, again)
    }

    /// Records when to look at `txn_id` again; returns that instant.
    fn schedule(&self, txn_id: String, again: Again) -> Option<tokio::time::Instant> {
        let mut b = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        let wait = match again {
            Again::No => {
                b.remove(&txn_id);
                return None;
            }
            Again::Backoff => policy::next_backoff(b.get(&txn_id).map(|(_, w)| *w)),
            Again::After(d) => d,
        };
        let at = tokio::time::Instant::now() + wait;
        b.insert(txn_id, (at, wait));
        Some(at)
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

    /// One resolution step; when to try again (`None`: the state machine
    /// refused the step, look at it on the next pass).
    async fn resolve_once(self: &Arc<Self>, rec: Record) -> Option<Again> {
        match machine::next(rec.state, resolution_of(&rec.infno), rec.fail_kind) {
            Action::Renew => self.renew(rec).await,
            Action::Resolve => self.resolve(rec, Step::Resolve).await,
            Action::Probe => self.resolve(rec, Step::Probe).await,
            Action::Send => self.abandoned(rec).await,
            Action::Stop => None,
        }
    }

    /// A `pending` record no submitter holds: its send could not be
    /// journaled, so nothing left. It fails, safe to resubmit.
    async fn abandoned(&self, mut rec: Record) -> Option<Again> {
        let before = policy::recovered(&mut rec, Local::now())?;
        warn!(txn_id = %rec.txn_id, "A transaction was never sent (its send could not be journaled): failed, safe to resubmit.");
        match self
            .save(&rec, Some(format!("abandoned in {}", before.as_str())))
            .await
        {
            Ok(()) => Some(Again::No),
            Err(_) => Some(Again::Backoff),
        }
    }

    /// A side-effect-free request whose answer was lost: sent again under a
    /// new msgid (journaled with the send).
    async fn renew(self: &Arc<Self>, mut rec: Record) -> Option<Again> {
        let Ok(sign_no) = self.sign_no().await else {
            return Some(Again::Backoff);
        };
        let p =
            match self
                .gateway
                .prepare(&rec.infno, rec.input.clone(), &rec.insuplc_admdvs, &sign_no)
            {
                Ok(p) => p,
                Err(e) => {
                    warn!(error = %e, "Cannot prepare a resend.");
                    return Some(Again::Backoff);
                }
            };
        rec.msgid = p.msgid.to_string();
        rec.request = body_text(&p);
        rec.resent_after_unknown = true;
        let r = resolution_of(&rec.infno);
        rec.state = machine::apply(rec.state, r, rec.fail_kind, &Event::Renewed).ok()?;
        Some(match self.drive(rec, p).await {
            Ok(rec) if rec.state.is_final() => Again::No,
            _ => Again::Backoff,
        })
    }

    /// One attempt to undo, find or confirm an original: journal the
    /// attempt, send it, journal what it established. Undos wait for the
    /// grace period first.
    async fn resolve(self: &Arc<Self>, mut rec: Record, step: Step) -> Option<Again> {
        let r = resolution_of(&rec.infno);
        let grace = self.settings.reversal_grace;
        if step == Step::Resolve
            && policy::waits_for_grace(r)
            && let Some(left) = policy::grace_left(self.age(&rec), grace)
        {
            // An undo sent now could be overtaken by the original.
            return Some(Again::After(left));
        }
        let request = match step {
            Step::Probe => Some((
                "2601",
                reversal::reversal_input(&rec.psn_no, &rec.msgid, &rec.infno),
            )),
            Step::Resolve => policy::resolution_request(&rec, r),
        };
        let Some((infno, input)) = request else {
            error!("Cannot build the undo request; needs a person.");
            return Some(Again::Backoff);
        };
        let Ok(sign_no) = self.sign_no().await else {
            return Some(Again::Backoff);
        };
        let p = match self
            .gateway
            .prepare(infno, input, &rec.insuplc_admdvs, &sign_no)
        {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "Cannot prepare the undo.");
                return Some(Again::Backoff);
            }
        };
        let attempts = rec.reversal.as_ref().map(|x| x.attempts).unwrap_or(0) + 1;
        rec.reversal = Some(Reversal {
            msgid: p.msgid.to_string(),
            infno: infno.to_string(),
            state: "sent".into(),
            attempts,
        });
        if step == Step::Resolve {
            rec.state = machine::apply(rec.state, r, rec.fail_kind, &Event::Resolving).ok()?;
        }
        rec.updated_at = Local::now();
        if self
            .save(&rec, Some(format!("{infno} {} for {}", p.msgid, rec.msgid)))
            .await
            .is_err()
        {
            return Some(Again::Backoff);
        }
        crash::point("after_resolving");
        info!(omsgid = %rec.msgid, msgid = %p.msgid, via = infno, attempt = attempts, "Resolving.");
        let out = self.gateway.send(&p).await;
        crate::metrics::global()
            .gateway_calls
            .inc(&[infno, out.class()]);
        crash::point("after_resolve_send");
        if out.is_sign_in_rejection() {
            self.gateway.invalidate_sign_in(&sign_no).await;
        }
        let limit = self.settings.max_unclear_answers;
        let verdict = match step {
            Step::Probe => {
                policy::probed(&mut rec, policy::probe_verdict(&out), &out, limit).ok()?
            }
            Step::Resolve => {
                let passed = policy::grace_passed(self.age(&rec), grace);
                let v = policy::verdict(r, &out, &rec, passed);
                policy::resolved(&mut rec, v, &out, limit).ok()?
            }
        };
        log_resolution(&rec, verdict, &out);
        rec.updated_at = Local::now();
        if let Err(e) = self
            .save(&rec, Some(format!("{infno} answer: {}", out.class())))
            .await
        {
            fatal(&e);
        }
        crash::point("after_resolved");
        if step == Step::Probe {
            return Some(if rec.fail_kind == Some(FailKind::Unconfirmed) {
                Again::Backoff
            } else {
                Again::No
            });
        }
        Some(policy::again(rec.state, verdict, self.age(&rec), grace))
    }
}

/// Logs what a resolution attempt established.
fn log_resolution(rec: &Record, verdict: Verdict, out: &Outcome<Response>) {
    match (out, rec.state) {
        (_, State::Reversed) => info!(omsgid = %rec.msgid, "Reversed."),
        (_, State::Succeeded) => {
            info!(omsgid = %rec.msgid, "The lost answer was found: it took effect.")
        }
        (_, State::Failed) if rec.fail_kind == Some(FailKind::Rejected) => {
            info!(omsgid = %rec.msgid, "Proven not in effect.")
        }
        (_, State::ReversalFailed) => {
            error!(omsgid = %rec.msgid, outcome = out.class(), "No definitive answer: needs a person.")
        }
        _ if matches!(
            verdict,
            Verdict::NotFound {
                grace_passed: false
            }
        ) =>
        {
            info!(omsgid = %rec.msgid, "Nothing found yet; asking again after the grace period in case the original is still on its way.")
        }
        _ => {
            warn!(omsgid = %rec.msgid, outcome = out.class(), attempt_state = policy::attempt_state(verdict, out), "Resolution not definitive yet; will retry.")
        }
    }
}
