//! The sale rule and the resolution policy against a model gateway, as a
//! property test: several attempts (`client_ref`s) of one sale, sent,
//! resubmitted, refused (some refusals committed anyway), lost (committed,
//! not committed, or landing late), crashed, cancelled, and resolved with
//! 2601 answers that may be lost or unclear. Whatever the sequence, at most
//! one settlement of the sale is in effect at any moment, and at the end
//! every record tells the truth about the gateway.

use std::collections::HashMap;

use proptest::prelude::*;
use serde_json::json;
use settlement_client::Outcome;
use settlement_client::envelope::Response;

use super::*;
use crate::engine::machine::{Action, next};
use crate::journal::Reversal;

/// Steps a slow original may take to land; the grace period is longer.
const GRACE: u32 = 4;

/// Unclear 2601 answers before a record goes to a person.
const LIMIT: u32 = 3;

/// What the gateway does with a settlement request.
#[derive(Debug, Clone, Copy)]
enum Gw {
    Ok,
    Refused,
    /// Commits, then answers `infcode -1`.
    RefusedCommitted,
    /// Commits, then a proxy answers HTTP 429.
    Http4xxCommitted,
    NotSent,
    LostCommitted,
    LostNotCommitted,
    /// Lost; commits this many steps later.
    LostSlow(u8),
}

/// How one round of 2601s goes.
#[derive(Debug, Clone, Copy)]
enum Round {
    /// The gateway answers by its books.
    Answer,
    /// The 2601 is lost.
    Lost,
    /// The 2601 never leaves.
    NotSent,
    /// A refusal in words the engine does not know.
    Unclear,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    /// A new `client_ref` for the sale.
    Sell(Gw),
    /// The client resubmits attempt `n % attempts` (resent if never sent).
    Resubmit(u8, Gw),
    /// The resolver's pass.
    Resolve(Round),
    /// The daemon restarts.
    Crash,
    /// The HIS cancels a settlement in effect (2103 succeeds).
    Cancel,
    /// Time passes.
    Tick,
}

fn gw() -> impl Strategy<Value = Gw> {
    prop_oneof![
        3 => Just(Gw::Ok),
        1 => Just(Gw::Refused),
        1 => Just(Gw::RefusedCommitted),
        1 => Just(Gw::Http4xxCommitted),
        2 => Just(Gw::NotSent),
        2 => Just(Gw::LostCommitted),
        2 => Just(Gw::LostNotCommitted),
        2 => (1u8..GRACE as u8).prop_map(Gw::LostSlow),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => gw().prop_map(Op::Sell),
        2 => (any::<u8>(), gw()).prop_map(|(n, g)| Op::Resubmit(n, g)),
        3 => Just(Op::Resolve(Round::Answer)),
        1 => Just(Op::Resolve(Round::Lost)),
        1 => Just(Op::Resolve(Round::NotSent)),
        1 => Just(Op::Resolve(Round::Unclear)),
        1 => Just(Op::Crash),
        1 => Just(Op::Cancel),
        2 => Just(Op::Tick),
    ]
}

/// What the gateway holds for one msgid.
#[derive(Debug, Default, Clone, Copy)]
struct Held {
    reversed: bool,
    cancelled: bool,
}

/// The gateway's books and the attempts of one sale.
struct World {
    attempts: Vec<Record>,
    sent_at: Vec<u32>,
    held: HashMap<String, Held>,
    in_flight: Vec<(String, u8)>,
    step: u32,
    next_msgid: u32,
}

impl World {
    fn in_effect(&self) -> usize {
        self.held
            .values()
            .filter(|h| !h.reversed && !h.cancelled)
            .count()
    }

    fn new_msgid(&mut self) -> String {
        self.next_msgid += 1;
        format!("P42130200001202611231000{:06}", self.next_msgid)
    }

    fn cancelled(&self, rec: &Record) -> bool {
        self.held.get(&rec.msgid).is_some_and(|h| h.cancelled)
    }

    /// Time passes: slow originals land.
    fn tick(&mut self) {
        self.step += 1;
        for (m, d) in self.in_flight.iter_mut() {
            *d = d.saturating_sub(1);
            if *d == 0 {
                self.held.entry(m.clone()).or_default();
            }
        }
        self.in_flight.retain(|(_, d)| *d > 0);
    }

    /// Sends attempt `i` (pending) if the sale rule lets it.
    fn send(&mut self, i: usize, g: Gw) {
        let blocked = (0..self.attempts.len()).any(|j| {
            j != i && blocks(&self.attempts[j], self.cancelled(&self.attempts[j])).is_some()
        });
        let rec = &mut self.attempts[i];
        if blocked {
            // Nothing written: back to what it was (never sent).
            if rec.state == State::Pending {
                rec.state = State::Failed;
                rec.fail_kind = Some(FailKind::NotSent);
            }
            return;
        }
        let r = resolution_of(&rec.infno);
        rec.state = machine::apply(rec.state, r, rec.fail_kind, &Event::Sending).unwrap();
        self.sent_at[i] = self.step;
        let msgid = rec.msgid.clone();
        let ok = || {
            Outcome::Ok(Response::success(
                json!({"setlinfo": {"setl_id": format!("S{msgid}"), "mdtrt_id": "V"}}),
            ))
        };
        let rej = |infcode: i64, m: &str| Outcome::Rejected {
            infcode,
            err_msg: m.into(),
        };
        let lost = || Outcome::Unknown {
            reason: "reset".into(),
        };
        let out = match g {
            Gw::Ok => {
                self.held.insert(msgid.clone(), Held::default());
                ok()
            }
            Gw::Refused => rej(-1, "FSI-个人账户余额不足"),
            Gw::RefusedCommitted => {
                self.held.insert(msgid.clone(), Held::default());
                rej(-1, "FSI-结算失败，请重试")
            }
            Gw::Http4xxCommitted => {
                self.held.insert(msgid.clone(), Held::default());
                rej(-429, "HTTP 429 Too Many Requests")
            }
            Gw::NotSent => Outcome::NotSent {
                reason: "refused".into(),
            },
            Gw::LostCommitted => {
                self.held.insert(msgid.clone(), Held::default());
                lost()
            }
            Gw::LostNotCommitted => lost(),
            Gw::LostSlow(d) => {
                self.in_flight.push((msgid.clone(), d));
                lost()
            }
        };
        answered(&mut self.attempts[i], &out);
    }

    /// The answer of a 2601 of `msgid` in this round.
    fn reversal(&mut self, msgid: &str, round: Round) -> Outcome<Response> {
        let rej = |m: &str| Outcome::Rejected {
            infcode: -1,
            err_msg: m.into(),
        };
        match round {
            Round::Lost => Outcome::Unknown {
                reason: "timeout".into(),
            },
            Round::NotSent => Outcome::NotSent {
                reason: "refused".into(),
            },
            Round::Unclear => rej("FSI-冲正失败:系统繁忙"),
            Round::Answer => match self.held.get_mut(msgid) {
                None => rej("FSI-冲正失败:原交易不存在"),
                Some(h) if h.reversed => rej("FSI-冲正失败:原交易已冲正"),
                Some(h) if h.cancelled => rej(settlement_client::wording::REFUND_FLAG_SET_CAPTURE),
                Some(h) => {
                    h.reversed = true;
                    Outcome::Ok(Response::success(json!({})))
                }
            },
        }
    }

    /// The resolver's pass over every attempt that needs work.
    fn resolve(&mut self, round: Round) {
        for i in 0..self.attempts.len() {
            let rec = &self.attempts[i];
            let r = resolution_of(&rec.infno);
            let age = self.step - self.sent_at[i];
            match next(rec.state, r, rec.fail_kind) {
                Action::Resolve => {
                    if age < GRACE {
                        continue; // undos wait out the grace period
                    }
                    let msgid = rec.msgid.clone();
                    let out = self.reversal(&msgid, round);
                    let rec = &mut self.attempts[i];
                    rec.state =
                        machine::apply(rec.state, r, rec.fail_kind, &Event::Resolving).unwrap();
                    rec.reversal.get_or_insert(Reversal {
                        msgid: "R".into(),
                        infno: "2601".into(),
                        state: "sent".into(),
                        attempts: 0,
                    });
                    let v = verdict(r, &out, rec, age >= GRACE);
                    resolved(rec, v, &out, LIMIT).unwrap();
                }
                Action::Probe => {
                    let msgid = rec.msgid.clone();
                    let out = self.reversal(&msgid, round);
                    let rec = &mut self.attempts[i];
                    probed(rec, probe_verdict(&out), &out, LIMIT).unwrap();
                }
                _ => {}
            }
        }
    }

    fn new_attempt(&mut self) -> usize {
        let msgid = self.new_msgid();
        let n = self.attempts.len();
        self.attempts.push(Record {
            sale_key: Some("sale".into()),
            msgid,
            sent_at: None,
            ..Record::sample(&format!("c{n}"), "2102", State::Pending)
        });
        self.sent_at.push(0);
        n
    }

    fn apply(&mut self, op: Op) {
        self.tick();
        match op {
            Op::Sell(g) => {
                let i = self.new_attempt();
                self.send(i, g);
                if self.attempts[i].state == State::Pending {
                    self.attempts.pop();
                    self.sent_at.pop();
                }
            }
            Op::Resubmit(n, g) => {
                if self.attempts.is_empty() {
                    return;
                }
                let i = n as usize % self.attempts.len();
                let rec = &mut self.attempts[i];
                if rec.state == State::Failed && rec.fail_kind.is_some_and(FailKind::retryable) {
                    let r = resolution_of(&rec.infno);
                    rec.state =
                        machine::apply(rec.state, r, rec.fail_kind, &Event::Retried).unwrap();
                    rec.fail_kind = None;
                    self.send(i, g);
                }
            }
            Op::Resolve(round) => self.resolve(round),
            Op::Crash => {
                for rec in &mut self.attempts {
                    recovered(rec, chrono::Local::now());
                }
            }
            Op::Cancel => {
                if let Some(h) = self
                    .attempts
                    .iter()
                    .filter(|r| r.state == State::Succeeded)
                    .find_map(|r| self.held.get(&r.msgid).map(|_| r.msgid.clone()))
                    .and_then(|m| self.held.get_mut(&m))
                    .filter(|h| !h.reversed)
                {
                    h.cancelled = true;
                }
            }
            Op::Tick => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Several attempts of one sale, whatever the gateway and the clients
    /// do: never two settlements in effect, and every record ends true.
    #[test]
    fn one_sale_never_settles_twice(ops in proptest::collection::vec(op(), 0..60)) {
        let mut w = World {
            attempts: Vec::new(),
            sent_at: Vec::new(),
            held: HashMap::new(),
            in_flight: Vec::new(),
            step: 0,
            next_msgid: 0,
        };
        for op in ops {
            w.apply(op);
            prop_assert!(w.in_effect() <= 1, "two settlements in effect after {op:?}: {:?}", w.held);
        }
        // Let everything land and resolve with definitive answers.
        for _ in 0..(GRACE * 4) {
            w.apply(Op::Tick);
            w.apply(Op::Resolve(Round::Answer));
            prop_assert!(w.in_effect() <= 1);
        }
        for (i, rec) in w.attempts.iter().enumerate() {
            let held = w.held.get(&rec.msgid).copied();
            let live = held.is_some_and(|h| !h.reversed && !h.cancelled);
            prop_assert!(
                rec.state.is_final()
                    && !(rec.state == State::Failed && rec.fail_kind == Some(FailKind::Unconfirmed)),
                "attempt {i} ended {:?}/{:?}", rec.state, rec.fail_kind
            );
            match rec.state {
                State::Succeeded => prop_assert!(
                    held.is_some_and(|h| !h.reversed),
                    "attempt {i} succeeded but the gateway does not hold it"
                ),
                State::Failed | State::Reversed => prop_assert!(
                    !live,
                    "attempt {i} is {:?} but in effect", rec.state
                ),
                // With a person: whatever it is, it still blocks the sale.
                _ => {}
            }
        }
    }
}
