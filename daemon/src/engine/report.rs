//! Reading the journal for clients: `txn.get`, `txn.list` and the
//! `report.usage` the bureaus rank terminals by.

use std::collections::BTreeMap;

use chrono::{DateTime, Local, NaiveDate};

use super::machine::State;
use super::{TxnError, TxnKey};
use crate::journal::{Journal, Record, UsageRow};

/// Settlements in effect over a range of days, by credential type.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    /// First day.
    pub from: NaiveDate,
    /// Last day, inclusive.
    pub to: NaiveDate,
    /// Settlements per credential type (`01` 医保码, `02` ID card, `03`
    /// social-security card; the three always present).
    pub by_cert_type: BTreeMap<String, u64>,
    /// Per day that had settlements, in date order.
    pub by_day: Vec<DayUsage>,
}

/// One day of [`Usage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayUsage {
    /// The local date.
    pub date: NaiveDate,
    /// Settlements in effect.
    pub total: u64,
    /// Of which paid with the 医保码 (`01`).
    pub medical_code: u64,
}

impl Usage {
    /// Sums journal rows into the report.
    pub fn from_rows(from: NaiveDate, to: NaiveDate, rows: &[UsageRow]) -> Usage {
        let mut by_cert_type: BTreeMap<String, u64> = ["01", "02", "03"]
            .into_iter()
            .map(|c| (c.to_string(), 0))
            .collect();
        let mut by_day: BTreeMap<NaiveDate, DayUsage> = BTreeMap::new();
        for r in rows {
            *by_cert_type.entry(r.mdtrt_cert_type.clone()).or_default() += r.count;
            let d = by_day.entry(r.date).or_insert(DayUsage {
                date: r.date,
                total: 0,
                medical_code: 0,
            });
            d.total += r.count;
            if r.mdtrt_cert_type == "01" {
                d.medical_code += r.count;
            }
        }
        Usage {
            from,
            to,
            by_cert_type,
            by_day: by_day.into_values().collect(),
        }
    }

    /// All settlements in effect.
    pub fn total(&self) -> u64 {
        self.by_cert_type.values().sum()
    }

    /// The 医保码 share of settlements, rounded to 4 decimals (0 when none).
    pub fn medical_code_rate(&self) -> f64 {
        let total = self.total();
        if total == 0 {
            return 0.0;
        }
        let mc = self.by_cert_type.get("01").copied().unwrap_or(0);
        (mc as f64 / total as f64 * 10_000.0).round() / 10_000.0
    }
}

/// `txn.get`.
pub async fn get(journal: &Journal, key: &TxnKey) -> Result<Record, TxnError> {
    let rec = match key {
        TxnKey::TxnId(t) => journal.by_txn_id(t).await?,
        TxnKey::ClientRef(c) => journal.by_client_ref(c).await?,
    };
    rec.ok_or_else(|| TxnError::NotFound(key.clone()))
}

/// `txn.list`: newest first; with `needs_person` (open since before that
/// time) only records a person must look at.
pub async fn list(
    journal: &Journal,
    since: Option<DateTime<Local>>,
    state: Option<State>,
    needs_person: Option<DateTime<Local>>,
    limit: usize,
) -> Result<Vec<Record>, TxnError> {
    Ok(journal.list(since, state, needs_person, limit).await?)
}

/// `report.usage`.
pub async fn usage(journal: &Journal, from: NaiveDate, to: NaiveDate) -> Result<Usage, TxnError> {
    let rows = journal.usage(from, to).await?;
    Ok(Usage::from_rows(from, to, &rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_per_type_and_day() {
        let d1 = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let d2 = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();
        let row = |date, t: &str, count| UsageRow {
            date,
            mdtrt_cert_type: t.into(),
            count,
        };
        let u = Usage::from_rows(
            d1,
            d2,
            &[row(d2, "01", 2), row(d1, "02", 1), row(d2, "03", 1)],
        );
        assert_eq!(u.total(), 4);
        assert_eq!(u.medical_code_rate(), 0.5);
        assert_eq!(u.by_cert_type["02"], 1);
        assert_eq!(
            u.by_day,
            vec![
                DayUsage {
                    date: d1,
                    total: 1,
                    medical_code: 0
                },
                DayUsage {
                    date: d2,
                    total: 3,
                    medical_code: 2
                }
            ]
        );
        let empty = Usage::from_rows(d1, d1, &[]);
        assert_eq!(empty.total(), 0);
        assert_eq!(empty.medical_code_rate(), 0.0);
        assert_eq!(empty.by_cert_type.len(), 3);
        let thirds = Usage::from_rows(d1, d1, &[row(d1, "01", 1), row(d1, "02", 2)]);
        assert_eq!(thirds.medical_code_rate(), 0.3333);
    }
}
