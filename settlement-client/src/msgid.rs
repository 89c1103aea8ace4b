//! Message ids: `fixmedins_code` (12) + `yyyyMMddHHmmss` (14) + 4-digit sequence.
//!
//! The msgid is the handle for reversal (2601), so it must be unique forever
//! for the institution. The allocator is sans-IO: it takes `now` and never
//! hands out the same id twice, even when more ids are asked for in one
//! second than the sequence holds (it borrows the next second) or after a
//! restart (callers resume it from the last journaled id).
//!
//! Several cashier PCs of one institution share its code, so they must not
//! share sequence numbers: a terminal configured with a node number `n`
//! (0–99) uses only sequences `n*100 … n*100+99` (100 ids per second).

use chrono::{NaiveDateTime, TimeDelta};

/// A validated 30-character msgid.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MsgId(String);

/// Why a string is not a msgid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("msgid must be 12-character institution code + yyyyMMddHHmmss + 4 digits, got {0:?}")]
pub struct MsgIdError(pub String);

const TIME_FMT: &str = "%Y%m%d%H%M%S";

impl MsgId {
    /// Checks the format of a msgid received from elsewhere.
    pub fn parse(s: &str) -> Result<MsgId, MsgIdError> {
        let err = || MsgIdError(s.to_string());
        if s.len() != 30 || !s.is_ascii() {
            return Err(err());
        }
        let (_, rest) = s.split_at(12);
        let (time, seq) = rest.split_at(14);
        if !seq.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        NaiveDateTime::parse_from_str(time, TIME_FMT).map_err(|_| err())?;
        Ok(MsgId(s.to_string()))
    }

    /// The institution code part.
    pub fn fixmedins_code(&self) -> &str {
        &self.0[..12]
    }

    /// The time part.
    pub fn time(&self) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(&self.0[12..26], TIME_FMT).unwrap_or_default()
    }

    /// The sequence part.
    pub fn seq(&self) -> u16 {
        self.0[26..].parse().unwrap_or(0)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for MsgId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Hands out strictly increasing msgids for one institution.
#[derive(Debug, Clone)]
pub struct MsgIdAllocator {
    prefix: String,
    /// First and last sequence number this terminal may use.
    range: (u16, u16),
    last: Option<(NaiveDateTime, u16)>,
}

impl MsgIdAllocator {
    /// An allocator for `fixmedins_code` (must be 12 characters).
    pub fn new(fixmedins_code: &str) -> Self {
        MsgIdAllocator {
            prefix: fixmedins_code.to_string(),
            range: (0, 9999),
            last: None,
        }
    }

    /// An allocator for terminal `node` (0–99) of a multi-terminal institution.
    pub fn with_node(fixmedins_code: &str, node: Option<u8>) -> Self {
        let mut a = MsgIdAllocator::new(fixmedins_code);
        if let Some(n) = node {
            let n = u16::from(n.min(99));
            a.range = (n * 100, n * 100 + 99);
        }
        a
    }

    /// Never hands out anything at or before `last` (e.g. the newest journaled id).
    pub fn resume_after(&mut self, last: &MsgId) {
        let cand = (last.time(), last.seq());
        if self.last.is_none_or(|l| cand > l) {
            self.last = Some(cand);
        }
    }

    /// The next id at local time `now`.
    pub fn next(&mut self, now: NaiveDateTime) -> MsgId {
        let now = now.with_nanosecond0();
        let (lo, hi) = self.range;
        let (t, seq) = match self.last {
            Some((t, s)) if t >= now => {
                if s >= hi {
                    (t + TimeDelta::seconds(1), lo)
                } else {
                    (t, (s + 1).max(lo))
                }
            }
            _ => (now, lo),
        };
        self.last = Some((t, seq));
        MsgId(format!("{}{}{:04}", self.prefix, t.format(TIME_FMT), seq))
    }
}

trait TruncSecs {
    fn with_nanosecond0(self) -> Self;
}

impl TruncSecs for NaiveDateTime {
    fn with_nanosecond0(self) -> Self {
        use chrono::Timelike;
        self.with_nanosecond(0).unwrap_or(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn format_matches_the_spec_example() {
        let m = MsgId::parse("H33018300564202201211447429999").unwrap();
        assert_eq!(m.fixmedins_code(), "H33018300564");
        assert_eq!(m.seq(), 9999);
        assert!(MsgId::parse("H3301830056420220121144742999").is_err());
        assert!(MsgId::parse("H33018300564202213211447429999").is_err());
        assert!(MsgId::parse("H3301830056420220121144742999x").is_err());
    }

    #[test]
    fn ids_are_unique_and_increasing_even_past_9999_per_second() {
        let mut a = MsgIdAllocator::new("P42130200001");
        let now = t("2026-11-23 10:00:00");
        let mut prev = a.next(now);
        assert_eq!(prev.as_str(), "P42130200001202611231000000000");
        for _ in 0..20_000 {
            let n = a.next(now);
            assert!(n > prev);
            assert_eq!(MsgId::parse(n.as_str()).unwrap(), n);
            prev = n;
        }
    }

    #[test]
    fn terminals_of_one_institution_never_collide() {
        let now = t("2026-11-23 10:00:00");
        let mut a = MsgIdAllocator::with_node("P42130200001", Some(3));
        let mut b = MsgIdAllocator::with_node("P42130200001", Some(4));
        let mut seen = std::collections::HashSet::new();
        for _ in 0..500 {
            let x = a.next(now);
            assert!((300..=399).contains(&x.seq()));
            assert!(seen.insert(x));
            assert!(seen.insert(b.next(now)));
        }
    }

    #[test]
    fn resume_never_repeats_an_old_id_even_if_the_clock_went_back() {
        let mut a = MsgIdAllocator::new("P42130200001");
        a.resume_after(&MsgId::parse("P42130200001202611231000000042").unwrap());
        assert_eq!(
            a.next(t("2026-11-23 09:59:00")).as_str(),
            "P42130200001202611231000000043"
        );
        assert_eq!(
            a.next(t("2026-11-23 10:00:05")).as_str(),
            "P42130200001202611231000050000"
        );
    }
}
