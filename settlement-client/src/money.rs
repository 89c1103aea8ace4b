//! Money as integer fen. Never a float (gateway.md §4.2).
//!
//! The gateway sends yuan with two decimals, as JSON numbers or strings.
//! `serde_json` is built with `arbitrary_precision`, so a number's exact text
//! survives parsing and is read here digit by digit.

use serde_json::Value;

/// An amount in fen (1/100 yuan); negative for refunds and cancels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(pub i64);

/// Why a value is not an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an amount with at most two decimals: {0:?}")]
pub struct MoneyError(pub String);

impl Money {
    /// Zero yuan.
    pub const ZERO: Money = Money(0);

    /// Parses `"12.3"`, `"-0.05"`, `"100"` (yuan) exactly.
    pub fn parse(s: &str) -> Result<Money, MoneyError> {
        let err = || MoneyError(s.to_string());
        let t = s.trim();
        let (neg, t) = match t.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        if int.is_empty() && frac.is_empty() {
            return Err(err());
        }
        if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        // Accept trailing zeros beyond two decimals ("1.500"), nothing else.
        let frac_trim = frac.trim_end_matches('0');
        if frac_trim.len() > 2 {
            return Err(err());
        }
        let yuan: i64 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| err())?
        };
        let mut fen_s = frac_trim.to_string();
        while fen_s.len() < 2 {
            fen_s.push('0');
        }
        let fen: i64 = fen_s.parse().map_err(|_| err())?;
        let v = yuan
            .checked_mul(100)
            .and_then(|y| y.checked_add(fen))
            .ok_or_else(err)?;
        Ok(Money(if neg { -v } else { v }))
    }

    /// Reads an amount from a JSON number or string.
    pub fn from_json(v: &Value) -> Result<Money, MoneyError> {
        match v {
            Value::Number(n) => Money::parse(&n.to_string()),
            Value::String(s) => Money::parse(s),
            other => Err(MoneyError(other.to_string())),
        }
    }

    /// A JSON number with exactly two decimals, e.g. `12.30`.
    pub fn to_json(self) -> Value {
        let n: serde_json::Number =
            serde_json::from_str(&self.to_string()).unwrap_or_else(|_| 0.into());
        Value::Number(n)
    }

    /// Sum that refuses to overflow.
    pub fn checked_add(self, o: Money) -> Option<Money> {
        self.0.checked_add(o.0).map(Money)
    }
}

/// Written as a JSON number with two decimals (`12.30`), as the gateway does.
impl serde::Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&self.to_json(), s)
    }
}

/// Read from a JSON number or string of yuan, exactly.
impl<'de> serde::Deserialize<'de> for Money {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Money::from_json(&v).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", a / 100, a % 100)
    }
}

impl std::ops::Add for Money {
    type Output = Money;
    fn add(self, o: Money) -> Money {
        Money(self.0 + o.0)
    }
}

impl std::ops::Sub for Money {
    type Output = Money;
    fn sub(self, o: Money) -> Money {
        Money(self.0 - o.0)
    }
}

impl std::ops::Neg for Money {
    type Output = Money;
    fn neg(self) -> Money {
        Money(-self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exactly() {
        assert_eq!(Money::parse("12.3").unwrap(), Money(1230));
        assert_eq!(Money::parse("0.05").unwrap(), Money(5));
        assert_eq!(Money::parse("-100").unwrap(), Money(-10000));
        assert_eq!(Money::parse("1.500").unwrap(), Money(150));
        assert_eq!(Money::parse(".5").unwrap(), Money(50));
        assert!(Money::parse("1.005").is_err());
        assert!(Money::parse("1e3").is_err());
        assert!(Money::parse("").is_err());
        assert!(Money::parse("abc").is_err());
        assert!(Money::parse("99999999999999999999").is_err());
    }

    #[test]
    fn json_numbers_keep_their_digits() {
        // 0.1 + 0.2 would not be 0.3 in floats; here it is.
        let v: Value = serde_json::from_str(r#"{"a":0.10,"b":0.20,"c":"0.30"}"#).unwrap();
        let a = Money::from_json(&v["a"]).unwrap();
        let b = Money::from_json(&v["b"]).unwrap();
        assert_eq!(a + b, Money::from_json(&v["c"]).unwrap());
        assert_eq!(Money(1230).to_json().to_string(), "12.30");
        assert_eq!(Money(-5).to_json().to_string(), "-0.05");
        assert_eq!(serde_json::to_string(&Money(100)).unwrap(), "1.00");
        let m: Money = serde_json::from_str("\"3.10\"").unwrap();
        assert_eq!(m, Money(310));
        assert!(serde_json::from_str::<Money>("1.234").is_err());
    }

    proptest::proptest! {
        #[test]
        fn display_parse_round_trip(fen in -1_000_000_000_000i64..1_000_000_000_000) {
            let m = Money(fen);
            proptest::prop_assert_eq!(Money::parse(&m.to_string()).unwrap(), m);
            proptest::prop_assert_eq!(Money::from_json(&m.to_json()).unwrap(), m);
        }
    }
}
