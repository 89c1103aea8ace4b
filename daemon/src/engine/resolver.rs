//! The resolver: works every unresolved record until it is final — 2601,
//! an own cancel or a query for unknown outcomes, a resend under a new
//! msgid for side-effect-free ones — with back-off, and reports records
//! that stay unresolved too long. [`super::policy`] decides; this module
//! sends, journals and waits.

use std::sync::Arc;
use std::time::Duration;

use chrono::Local;
use settlement_client::Outcome;
use settlement_client::envelope::Response;
use tracing::{Instrument, error, info, warn};

use super::crash;
use super::machine::{self, Action, Event, State, Verdict};
use super::policy::{self, Again, resolution_of};
use super::runtime::{Engine, body_text, fatal};
use crate::journal::{Record, Reversal};

/// An unresolved record older than this is reported as stale (error log, metric).
pub const STALE_AFTER: Duration = Duration::from_secs(10 * 60);

/// How often the resolver looks at open records that have nothing due.
const STALE_CHECK: Duration = Duration::from_secs(60);

impl Engine {
    /// The resolver: works every unresolved record until it is final.
    pub(super) async fn resolver(self: Arc<Self>) {
        loop {
            let open = match self.journal.unresolved().await {
                Ok(v) => v,
                Err(e) => {
                    error!(error = %e, "Cannot read the journal.");
                    Vec::new()
                }
            };
            let now = tokio::time::Instant::now();
            // Look again at least each minute while anything is open, to
            // report records that stay unresolved too long.
            let mut next_due = (!open.is_empty()).then(|| now + STALE_CHECK);
            for rec in open {
                if self.cancel.is_cancelled() {
                    return;
                }
                if let Some(due) = self.work_on(rec, now).await {
                    next_due = Some(next_due.map_or(due, |n| n.min(due)));
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

    /// One record in the resolver's pass: resolves it if due and free;
    /// returns when it is due again, if ever.
    async fn work_on(
        self: &Arc<Self>,
        rec: Record,
        now: tokio::time::Instant,
    ) -> Option<tokio::time::Instant> {
        self.report_stale(&rec);
        let r = resolution_of(&rec.infno);
        if !matches!(machine::next(rec.state, r), Action::Resolve | Action::Renew) {
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
        match machine::next(rec.state, resolution_of(&rec.infno)) {
            Action::Renew => self.renew(rec).await,
            Action::Resolve => self.resolve(rec).await,
            Action::Send | Action::Stop => None,
        }
    }

    /// A side-effect-free request whose answer was lost: sent again under a
    /// new msgid.
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
        let r = resolution_of(&rec.infno);
        rec.state = machine::apply(rec.state, r, rec.fail_kind, &Event::Renewed).ok()?;
        rec.updated_at = Local::now();
        if self
            .save(&rec, Some("renewed for a resend".into()))
            .await
            .is_err()
        {
            return Some(Again::Backoff);
        }
        let rec = self.drive(rec, p).await;
        Some(if rec.state.is_final() {
            Again::No
        } else {
            Again::Backoff
        })
    }

    /// One attempt to undo or find an original whose outcome is unknown:
    /// journal the attempt, send it, journal what it established.
    async fn resolve(self: &Arc<Self>, mut rec: Record) -> Option<Again> {
        let r = resolution_of(&rec.infno);
        let Some((infno, input)) = policy::resolution_request(&rec, r) else {
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
        rec.state = machine::apply(rec.state, r, rec.fail_kind, &Event::Resolving).ok()?;
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
        let now = Local::now();
        let grace = self.settings.reversal_grace;
        let grace_passed = policy::grace_passed(rec.sent_at, now, grace);
        let verdict = policy::verdict(r, &out, &rec, grace_passed);
        policy::resolved(&mut rec, verdict, &out).ok()?;
        log_resolution(&rec, verdict, &out);
        rec.updated_at = Local::now();
        if let Err(e) = self
            .save(&rec, Some(format!("{infno} answer: {}", out.class())))
            .await
        {
            fatal(&e);
        }
        crash::point("after_resolved");
        let age = policy::age(rec.sent_at, Local::now());
        Some(policy::again(rec.state, verdict, age, grace))
    }
}

/// Logs what a resolution attempt established.
fn log_resolution(rec: &Record, verdict: Verdict, out: &Outcome<Response>) {
    match (out, rec.state) {
        (_, State::Reversed) => info!(omsgid = %rec.msgid, "Reversed."),
        (_, State::Succeeded) => {
            info!(omsgid = %rec.msgid, "The lost answer was found: it took effect.")
        }
        (_, State::Failed) => info!(omsgid = %rec.msgid, "Proven never to have taken effect."),
        (Outcome::Rejected { infcode, err_msg }, State::ReversalFailed) => {
            error!(omsgid = %rec.msgid, infcode, err_msg = %err_msg, "Reversal refused: needs a person.")
        }
        _ if matches!(
            verdict,
            Verdict::NotFound {
                grace_passed: false
            }
        ) =>
        {
            info!(omsgid = %rec.msgid, "Nothing to undo yet; asking again after the grace period in case the original is still on its way.")
        }
        _ => {
            warn!(omsgid = %rec.msgid, outcome = out.class(), "Resolution not definitive yet; will retry.")
        }
    }
}
