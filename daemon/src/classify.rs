//! Telling codes apart (gateway.md §7). Sans-IO.
//!
//! A shared scanner also reads payment codes. They are digits only and are
//! recognised by length and prefix, so the cashier can be told "this is a
//! WeChat payment code, not a 医保码". Anything else matching the configured
//! pattern is a 医保码 candidate and goes to decode, which is the judge.

use regex::Regex;

/// What a scanned string is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeClass {
    /// A 医保码 candidate: send it to decode.
    MedicalCode,
    /// WeChat Pay 付款码: 18 digits starting 10–15.
    WechatPay,
    /// Alipay 付款码: 16–24 digits starting 25–30.
    Alipay,
    /// UnionPay QR: 19 digits starting 62.
    UnionPay,
    /// Anything else (a product barcode, a URL, text).
    Other,
}

impl CodeClass {
    /// The API spelling (`scan` event `class`, `not_medical_code` `data.class`).
    pub fn as_str(self) -> &'static str {
        match self {
            CodeClass::MedicalCode => "medical_code",
            CodeClass::WechatPay => "wechat_pay",
            CodeClass::Alipay => "alipay",
            CodeClass::UnionPay => "unionpay",
            CodeClass::Other => "other",
        }
    }

    /// A payment code scanned by mistake.
    pub fn is_payment(self) -> bool {
        matches!(
            self,
            CodeClass::WechatPay | CodeClass::Alipay | CodeClass::UnionPay
        )
    }

    /// What to say about a payment code scanned by mistake, to whom.
    pub fn hint(self, to: Audience) -> &'static str {
        match to {
            Audience::Cashier => self.cashier_hint(),
            Audience::Patient => self.patient_hint(),
        }
    }

    /// What a self-service kiosk tells the patient, in plain words, for a
    /// payment code: what they showed, and where the 医保码 is.
    pub fn patient_hint(self) -> &'static str {
        match self {
            CodeClass::WechatPay => {
                "您出示的是微信付款码，不是医保码。请在微信里搜索“医保码”，打开后再扫一次。"
            }
            CodeClass::Alipay => {
                "您出示的是支付宝付款码，不是医保码。请在支付宝里搜索“医保码”，打开后再扫一次。"
            }
            CodeClass::UnionPay => {
                "您出示的是银联付款码，不是医保码。请打开微信、支付宝或“国家医保服务平台”里的医保码，再扫一次。"
            }
            CodeClass::MedicalCode => "医保码",
            CodeClass::Other => "这不是医保码。请打开医保码再扫一次。",
        }
    }

    /// What to tell the cashier, in Chinese, for a payment code.
    pub fn cashier_hint(self) -> &'static str {
        match self {
            CodeClass::WechatPay => "这是微信付款码，不是医保码，请患者打开医保码",
            CodeClass::Alipay => "这是支付宝付款码，不是医保码，请患者打开医保码",
            CodeClass::UnionPay => "这是银联付款码，不是医保码，请患者打开医保码",
            CodeClass::MedicalCode => "医保码",
            CodeClass::Other => "不是医保码",
        }
    }
}

/// Who reads a hint: the cashier at a counter, or the patient at a kiosk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// A cashier, who asks the patient for the 医保码.
    Cashier,
    /// The patient at an unattended self-service kiosk.
    Patient,
}

/// Classifies `text` with the configured 医保码 pattern.
pub fn classify(text: &str, medical_code_pattern: &Regex) -> CodeClass {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if digits {
        let n = text.len();
        let p2: u8 = text.get(..2).and_then(|p| p.parse().ok()).unwrap_or(0);
        if n == 18 && (10..=15).contains(&p2) {
            return CodeClass::WechatPay;
        }
        if (16..=24).contains(&n) && (25..=30).contains(&p2) {
            return CodeClass::Alipay;
        }
        if n == 19 && p2 == 62 {
            return CodeClass::UnionPay;
        }
    }
    if medical_code_pattern.is_match(text) {
        CodeClass::MedicalCode
    } else {
        CodeClass::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> CodeClass {
        classify(s, &Regex::new("^[0-9A-Za-z]{1,64}$").unwrap())
    }

    #[test]
    fn payment_codes_by_length_and_prefix() {
        assert_eq!(c("134567890123456789"), CodeClass::WechatPay);
        assert_eq!(c("104567890123456789"), CodeClass::WechatPay);
        assert_eq!(c("284567890123456789"), CodeClass::Alipay);
        assert_eq!(c("2545678901234567"), CodeClass::Alipay);
        assert_eq!(c("304567890123456789012345"), CodeClass::Alipay);
        assert_eq!(c("6212345678901234567"), CodeClass::UnionPay);
    }

    #[test]
    fn the_public_medical_code_sample_is_a_candidate() {
        assert_eq!(c("4243754826492874240001130000"), CodeClass::MedicalCode);
        // Near misses of payment rules go to decode, which judges.
        assert_eq!(c("164567890123456789"), CodeClass::MedicalCode);
        assert_eq!(c("13456789012345678"), CodeClass::MedicalCode);
        assert_eq!(c("3145678901234567"), CodeClass::MedicalCode);
    }

    #[test]
    fn other_text() {
        assert_eq!(c("https://example.com/x"), CodeClass::Other);
        assert_eq!(c("笔记本"), CodeClass::Other);
        assert_eq!(c(""), CodeClass::Other);
        assert_eq!(c(&"9".repeat(65)), CodeClass::Other);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_payment_codes_are_digits(s in ".{0,80}") {
            let k = c(&s);
            if k.is_payment() {
                proptest::prop_assert!(s.bytes().all(|b| b.is_ascii_digit()));
            }
        }
    }
}
