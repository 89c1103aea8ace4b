//! The simulator's books: visits, fee lines, settlements, reversals, and the
//! split policy; plus the [`Ledger`] view with its conservation check.
//!
//! The ledger is what lets a test *prove* money is conserved across faults
//! and reversals: for every person, the balance at start minus the account
//! payments of every settlement record still in effect (cancels count with
//! their negative amounts; reversed records count for nothing) must equal
//! the balance now, and every record's split must add up to its total.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};
use settlement_client::money::Money;

/// Where care happened, which decides the policy and the fee flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitKind {
    /// A pharmacy sale (2102 creates the visit).
    Pharmacy,
    /// An outpatient visit (2201).
    Outpatient,
    /// An inpatient stay (2401).
    Inpatient,
}

/// The money split of one settlement (`setlinfo` money fields).
///
/// Invariant (checked by [`Ledger::check`]): `hifp_pay + acct_pay +
/// psn_cash_pay == medfee_sumamt`, `fund_pay_sumamt == hifp_pay`,
/// `psn_part_amt == acct_pay + psn_cash_pay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Split {
    /// Total.
    pub medfee_sumamt: Money,
    /// Fully self-paid part (always 0 in the simulator).
    pub fulamt_ownpay_amt: Money,
    /// Over the price limit (0).
    pub overlmt_selfpay: Money,
    /// Paid first by the person (0).
    pub preselfpay_amt: Money,
    /// Within the policy's scope (= total).
    pub inscp_scp_amt: Money,
    /// Deductible (0).
    pub act_pay_dedc: Money,
    /// Pooled fund.
    pub hifp_pay: Money,
    /// Fund total (= pooled fund).
    pub fund_pay_sumamt: Money,
    /// Person's part (account + cash).
    pub psn_part_amt: Money,
    /// Personal account.
    pub acct_pay: Money,
    /// Cash.
    pub psn_cash_pay: Money,
}

/// The share of the in-scope amount the pooled fund pays, in percent.
///
/// Made up but plausible (the real tables are regional): employee basic
/// (310) 50 % at the pharmacy, 70 % outpatient, 85 % inpatient; resident
/// (390) 30 / 50 / 70 %; retired cadre (340) 100 %; others 50 %.
pub fn pooled_percent(kind: VisitKind, insutype: &str) -> i64 {
    match (insutype, kind) {
        ("340", _) => 100,
        ("310", VisitKind::Pharmacy) => 50,
        ("310", VisitKind::Outpatient) => 70,
        ("310", VisitKind::Inpatient) => 85,
        ("390", VisitKind::Pharmacy) => 30,
        ("390", VisitKind::Outpatient) => 50,
        ("390", VisitKind::Inpatient) => 70,
        _ => 50,
    }
}

/// Only employee insurance (310) has a personal account.
pub fn has_account(insutype: &str) -> bool {
    insutype == "310"
}

impl Split {
    /// Splits `total`: the pool pays its share (rounded down to the fen), the
    /// account pays the rest up to `balance` when `use_account`, cash the remainder.
    pub fn compute(
        total: Money,
        kind: VisitKind,
        insutype: &str,
        use_account: bool,
        balance: Money,
    ) -> Split {
        let hifp = Money(total.0 * pooled_percent(kind, insutype) / 100);
        let part = total - hifp;
        let acct = if use_account && has_account(insutype) {
            Money(part.0.min(balance.0.max(0)))
        } else {
            Money::ZERO
        };
        Split {
            medfee_sumamt: total,
            inscp_scp_amt: total,
            hifp_pay: hifp,
            fund_pay_sumamt: hifp,
            psn_part_amt: part,
            acct_pay: acct,
            psn_cash_pay: part - acct,
            ..Split::default()
        }
    }

    /// The same split with every amount negated (a cancel).
    pub fn negated(&self) -> Split {
        Split {
            medfee_sumamt: -self.medfee_sumamt,
            fulamt_ownpay_amt: -self.fulamt_ownpay_amt,
            overlmt_selfpay: -self.overlmt_selfpay,
            preselfpay_amt: -self.preselfpay_amt,
            inscp_scp_amt: -self.inscp_scp_amt,
            act_pay_dedc: -self.act_pay_dedc,
            hifp_pay: -self.hifp_pay,
            fund_pay_sumamt: -self.fund_pay_sumamt,
            psn_part_amt: -self.psn_part_amt,
            acct_pay: -self.acct_pay,
            psn_cash_pay: -self.psn_cash_pay,
        }
    }

    /// Writes the `setlinfo` money fields (the unused funds as 0.00).
    pub fn write_setlinfo(&self, m: &mut Map<String, Value>) {
        let z = Money::ZERO.to_json();
        for (k, v) in [
            ("medfee_sumamt", self.medfee_sumamt),
            ("fulamt_ownpay_amt", self.fulamt_ownpay_amt),
            ("overlmt_selfpay", self.overlmt_selfpay),
            ("preselfpay_amt", self.preselfpay_amt),
            ("inscp_scp_amt", self.inscp_scp_amt),
            ("act_pay_dedc", self.act_pay_dedc),
            ("hifp_pay", self.hifp_pay),
            ("fund_pay_sumamt", self.fund_pay_sumamt),
            ("psn_part_amt", self.psn_part_amt),
            ("acct_pay", self.acct_pay),
            ("psn_cash_pay", self.psn_cash_pay),
        ] {
            m.insert(k.into(), v.to_json());
        }
        for k in [
            "cvlserv_pay",
            "hifes_pay",
            "hifmi_pay",
            "hifob_pay",
            "maf_pay",
            "oth_pay",
            "hosp_part_amt",
            "acct_mulaid_pay",
        ] {
            m.insert(k.into(), z.clone());
        }
    }

    /// Problems with the split's arithmetic (empty when it adds up).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.hifp_pay + self.acct_pay + self.psn_cash_pay != self.medfee_sumamt {
            p.push(format!(
                "hifp_pay {} + acct_pay {} + psn_cash_pay {} != medfee_sumamt {}",
                self.hifp_pay, self.acct_pay, self.psn_cash_pay, self.medfee_sumamt
            ));
        }
        if self.fund_pay_sumamt != self.hifp_pay {
            p.push("fund_pay_sumamt != hifp_pay".into());
        }
        if self.psn_part_amt != self.acct_pay + self.psn_cash_pay {
            p.push("psn_part_amt != acct_pay + psn_cash_pay".into());
        }
        p
    }
}

/// Whether a settlement record is a settlement or the cancel of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// 2102, 2207, 2304: positive amounts.
    Settlement,
    /// 2103, 2208, 2305: negative amounts, its own `setl_id`.
    Cancel,
}

/// Whether a settlement record is in effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordState {
    /// In effect.
    Active,
    /// A settlement cancelled by a cancel record that is in effect.
    Cancelled,
    /// Undone by 2601: as if it never happened.
    Reversed,
}

/// One settlement or cancel, as the platform keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SettlementRecord {
    /// The platform's settlement id.
    pub setl_id: String,
    /// The visit.
    pub mdtrt_id: String,
    /// The request msgid (= `medins_setl_id`; the handle for 2601).
    pub msgid: String,
    /// The transaction number as sent (`2207`, `2207A`, `2208` …).
    pub infno: String,
    /// Who.
    pub psn_no: String,
    /// Insurance type used.
    pub insutype: String,
    /// Medical type (`41` pharmacy, `11` outpatient, `21` inpatient …).
    pub med_type: String,
    /// Settlement or cancel.
    pub kind: RecordKind,
    /// For a cancel: the `setl_id` it cancels.
    pub cancels: Option<String>,
    /// The amounts (negative for a cancel).
    pub split: Split,
    /// The account balance right after this record was committed.
    pub balc: Money,
    /// In effect, cancelled, or reversed.
    pub state: RecordState,
    /// For a cancelled settlement: the cancel's msgid.
    pub cancelled_by: Option<String>,
    /// For a cancelled settlement: the cancel's `setl_id`.
    pub cancel_setl_id: Option<String>,
    /// When reversed: the 2601's msgid.
    pub reversed_by: Option<String>,
    /// The fee lines (`feedetl_sn`) it settled.
    pub fee_lines: Vec<String>,
    /// `yyyy-MM-dd HH:mm:ss`.
    pub setl_time: String,
}

/// The state of a fee line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeeState {
    /// Uploaded, waiting for a settlement.
    Uploaded,
    /// Settled by this `setl_id`.
    Settled(String),
    /// Cancelled (2205/2302, or its visit was undone).
    Cancelled,
}

/// One uploaded fee line (2204/2301 `feedetail[]`, 2102 `drugdetail[]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeeLine {
    /// Unique within the visit.
    pub feedetl_sn: String,
    /// Charge batch (outpatient); empty for inpatient and pharmacy.
    pub chrg_bchno: String,
    /// `det_item_fee_sumamt`.
    pub amount: Money,
    /// Catalogue code of the item.
    pub med_list_codg: String,
    /// Where it stands.
    pub state: FeeState,
}

/// Whether a visit is open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitState {
    /// Open.
    Open,
    /// Cancelled by 2202/2404 (this msgid).
    Cancelled(String),
    /// Its admission (2401) was reversed by this 2601 msgid.
    Reversed(String),
}

/// One visit (`mdtrt_id`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Visit {
    /// The platform's visit id.
    pub mdtrt_id: String,
    /// Who.
    pub psn_no: String,
    /// Insurance type.
    pub insutype: String,
    /// Pharmacy, outpatient or inpatient.
    pub kind: VisitKind,
    /// The hospital's own number (`ipt_otp_no` / `ipt_no`).
    pub ipt_otp_no: String,
    /// Medical type.
    pub med_type: String,
    /// The msgid that opened it (2102, 2201, 2401).
    pub opened_by: String,
    /// Open, cancelled or reversed.
    pub state: VisitState,
    /// Inpatient: discharged (2402, undone by 2405).
    pub discharged: bool,
    /// Fee lines.
    pub fees: Vec<FeeLine>,
}

/// One 2601 as received, with its answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReversalRecord {
    /// The 2601's own msgid.
    pub msgid: String,
    /// The msgid it asked to undo.
    pub omsgid: String,
    /// The infno it named.
    pub oinfno: String,
    /// Who.
    pub psn_no: String,
    /// Whether it undid something.
    pub ok: bool,
    /// What it did, or why it was refused.
    pub detail: String,
}

/// One person's personal account.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountView {
    /// Who.
    pub psn_no: String,
    /// Balance at start.
    pub initial: Money,
    /// Balance now.
    pub current: Money,
}

/// A snapshot of the simulated platform's books (`GET /sim/ledger`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ledger {
    /// Balances per person.
    pub accounts: Vec<AccountView>,
    /// Visits in id order.
    pub visits: Vec<Visit>,
    /// Settlement and cancel records in commit order.
    pub settlements: Vec<SettlementRecord>,
    /// Every 2601 received, in order.
    pub reversals: Vec<ReversalRecord>,
}

impl Ledger {
    /// The record with this `setl_id`.
    pub fn settlement(&self, setl_id: &str) -> Option<&SettlementRecord> {
        self.settlements.iter().find(|s| s.setl_id == setl_id)
    }

    /// The record committed by request `msgid`.
    pub fn by_msgid(&self, msgid: &str) -> Option<&SettlementRecord> {
        self.settlements.iter().find(|s| s.msgid == msgid)
    }

    /// The balance of `psn_no` now.
    pub fn balance(&self, psn_no: &str) -> Option<Money> {
        self.accounts
            .iter()
            .find(|a| a.psn_no == psn_no)
            .map(|a| a.current)
    }

    /// Records of `psn_no` still in effect (active settlements and active cancels).
    pub fn in_effect<'a>(&'a self, psn_no: &'a str) -> impl Iterator<Item = &'a SettlementRecord> {
        self.settlements
            .iter()
            .filter(move |s| s.psn_no == psn_no && s.state != RecordState::Reversed)
    }

    /// Proves money is conserved. `Err` lists every violation:
    /// - per person: `initial − Σ acct_pay of records not reversed = current`,
    ///   and the balance is never negative;
    /// - per record: the split adds up;
    /// - per cancel in effect: it mirrors its settlement exactly, and that
    ///   settlement is `cancelled` by it; per cancelled settlement: exactly
    ///   one cancel in effect points at it;
    /// - per fee line settled: its settlement is active and lists it.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let mut p = Vec::new();
        for a in &self.accounts {
            let spent: i64 = self.in_effect(&a.psn_no).map(|s| s.split.acct_pay.0).sum();
            if a.initial - Money(spent) != a.current {
                p.push(format!(
                    "{}: initial {} - account payments in effect {} != current {}",
                    a.psn_no,
                    a.initial,
                    Money(spent),
                    a.current
                ));
            }
            if a.current < Money::ZERO {
                p.push(format!("{}: negative balance {}", a.psn_no, a.current));
            }
        }
        let by_id: BTreeMap<&str, &SettlementRecord> = self
            .settlements
            .iter()
            .map(|s| (s.setl_id.as_str(), s))
            .collect();
        if by_id.len() != self.settlements.len() {
            p.push("duplicate setl_id".into());
        }
        for s in &self.settlements {
            for e in s.split.problems() {
                p.push(format!("setl_id {}: {e}", s.setl_id));
            }
            match s.kind {
                RecordKind::Cancel => {
                    let Some(orig) = s.cancels.as_deref().and_then(|o| by_id.get(o)) else {
                        p.push(format!("cancel {} points at no settlement", s.setl_id));
                        continue;
                    };
                    if s.split != orig.split.negated() {
                        p.push(format!(
                            "cancel {} does not mirror {}",
                            s.setl_id, orig.setl_id
                        ));
                    }
                    if s.state == RecordState::Active
                        && (orig.state != RecordState::Cancelled
                            || orig.cancel_setl_id.as_deref() != Some(&s.setl_id))
                    {
                        p.push(format!(
                            "cancel {} is in effect but {} is not cancelled by it",
                            s.setl_id, orig.setl_id
                        ));
                    }
                }
                RecordKind::Settlement => {
                    let cancels = self
                        .settlements
                        .iter()
                        .filter(|c| {
                            c.kind == RecordKind::Cancel
                                && c.state == RecordState::Active
                                && c.cancels.as_deref() == Some(&s.setl_id)
                        })
                        .count();
                    let want = usize::from(s.state == RecordState::Cancelled);
                    if cancels != want {
                        p.push(format!(
                            "settlement {} is {:?} with {cancels} cancels in effect",
                            s.setl_id, s.state
                        ));
                    }
                }
            }
        }
        for v in &self.visits {
            for f in &v.fees {
                if let FeeState::Settled(id) = &f.state {
                    let ok = by_id.get(id.as_str()).is_some_and(|s| {
                        s.state == RecordState::Active && s.fee_lines.contains(&f.feedetl_sn)
                    });
                    if !ok {
                        p.push(format!(
                            "fee line {}/{} settled by {id}, which is not an active settlement of it",
                            v.mdtrt_id, f.feedetl_sn
                        ));
                    }
                }
            }
        }
        if p.is_empty() { Ok(()) } else { Err(p) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_add_up_and_respect_the_balance() {
        let s = Split::compute(
            Money(10_001),
            VisitKind::Outpatient,
            "310",
            true,
            Money(500),
        );
        assert_eq!(s.hifp_pay, Money(7000));
        assert_eq!(s.acct_pay, Money(500));
        assert_eq!(s.psn_cash_pay, Money(2501));
        assert!(s.problems().is_empty());
        let s = Split::compute(
            Money(10_000),
            VisitKind::Inpatient,
            "390",
            true,
            Money(99_999),
        );
        assert_eq!(s.acct_pay, Money::ZERO, "residents have no account");
        assert_eq!(s.hifp_pay, Money(7000));
        let n = s.negated();
        assert_eq!(n.medfee_sumamt, Money(-10_000));
        assert!(n.problems().is_empty());
    }

    proptest::proptest! {
        #[test]
        fn every_split_adds_up(total in 0i64..100_000_000, bal in 0i64..10_000_000, acct: bool, t in 0usize..4) {
            let insutype = ["310", "390", "340", "999"][t];
            for kind in [VisitKind::Pharmacy, VisitKind::Outpatient, VisitKind::Inpatient] {
                let s = Split::compute(Money(total), kind, insutype, acct, Money(bal));
                proptest::prop_assert!(s.problems().is_empty());
                proptest::prop_assert!(s.acct_pay <= Money(bal) && s.acct_pay >= Money::ZERO);
                proptest::prop_assert!(s.psn_cash_pay >= Money::ZERO);
            }
        }
    }
}
