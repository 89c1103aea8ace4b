//! Keyboard-wedge scanners: boot keyboard reports in, text bytes out.
//!
//! A wedge scanner "types" a code: one report per key press, an all-zero
//! report for the release. The decoder turns presses into bytes that the
//! [`crate::framer::Framer`] then cuts on the configured suffix (Enter
//! becomes `\r`, Tab `\t`):
//!
//! - US layout, **Shift only**: the host's CapsLock and NumLock never change
//!   the text (CapsLock/NumLock/ScrollLock presses are ignored, keypad keys
//!   are always digits);
//! - Ctrl + key gives the control character (Ctrl+] = GS, the GS1 separator);
//! - **Alt + keypad digits** compose one character when Alt is released:
//!   the number is a Unicode code point ([`AltMode::Unicode`]) or a GBK
//!   code ([`AltMode::Gbk`]), so Chinese text in a code survives. A
//!   sequence that is not a character poisons the frame with a NUL byte,
//!   which [`crate::text::decode`] refuses: a code is never silently altered.
//!
//! Memory: a few bytes of state; an Alt sequence longer than 10 digits is
//! invalid.

/// How an Alt+numpad number becomes a character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AltMode {
    /// The decimal number is a Unicode code point (Alt+31508 = 笔).
    Unicode,
    /// The decimal number is a GBK/CP936 code (Alt+45514 = 0xB1CA = 笔).
    Gbk,
}

/// Longest Alt+numpad number accepted.
const MAX_ALT_DIGITS: usize = 10;
/// Byte written for an invalid Alt sequence; [`crate::text::decode`] refuses it.
pub const POISON: u8 = 0x00;

/// Modifier bits of the boot report's first byte.
const CTRL: u8 = 0x01 | 0x10;
const SHIFT: u8 = 0x02 | 0x20;
const ALT: u8 = 0x04 | 0x40;

/// Decodes boot-protocol keyboard reports. Sans-IO.
#[derive(Debug, Clone)]
pub struct KeyboardDecoder {
    mode: AltMode,
    prev: [u8; 6],
    prev_alt: bool,
    digits: Vec<u8>,
    overflow: bool,
}

impl KeyboardDecoder {
    /// A decoder composing Alt sequences in `mode`.
    pub fn new(mode: AltMode) -> Self {
        KeyboardDecoder {
            mode,
            prev: [0; 6],
            prev_alt: false,
            digits: Vec::with_capacity(MAX_ALT_DIGITS),
            overflow: false,
        }
    }

    /// Forgets held keys and a pending Alt sequence (after a reconnect).
    pub fn reset(&mut self) {
        *self = KeyboardDecoder::new(self.mode);
    }

    /// Feeds one report `[modifiers, reserved, key1..key6]`; text bytes are
    /// appended to `out`.
    pub fn push(&mut self, report: &[u8], out: &mut Vec<u8>) {
        if report.len() < 3 {
            return;
        }
        let mods = report[0];
        let mut keys = [0u8; 6];
        for (k, r) in keys.iter_mut().zip(report[2..].iter()) {
            *k = *r;
        }
        // Roll-over / POST failure / undefined error: the report says nothing.
        if keys.iter().any(|&k| (1..=3).contains(&k)) {
            return;
        }
        let alt = mods & ALT != 0;
        if self.prev_alt && !alt {
            self.compose(out);
        }
        for &k in keys.iter().filter(|&&k| k != 0 && !self.prev.contains(&k)) {
            if alt {
                if let Some(d) = keypad_digit(k) {
                    if self.digits.len() < MAX_ALT_DIGITS {
                        self.digits.push(d);
                    } else {
                        self.overflow = true;
                    }
                }
                // Other keys under Alt are shortcuts, not text.
                continue;
            }
            if let Some(b) = key_byte(k, mods & SHIFT != 0, mods & CTRL != 0) {
                out.push(b);
            }
        }
        self.prev = keys;
        self.prev_alt = alt;
    }

    fn compose(&mut self, out: &mut Vec<u8>) {
        let digits = std::mem::take(&mut self.digits);
        let overflow = std::mem::replace(&mut self.overflow, false);
        if digits.is_empty() {
            return; // Alt pressed and released alone.
        }
        let n = digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        let ch = if overflow { None } else { self.char_of(n) };
        match ch {
            Some(c) => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
            None => out.push(POISON),
        }
    }

    fn char_of(&self, n: u64) -> Option<char> {
        if n == 0 {
            return None;
        }
        match self.mode {
            AltMode::Unicode => char::from_u32(u32::try_from(n).ok()?),
            AltMode::Gbk => {
                if n < 0x80 {
                    return char::from_u32(n as u32);
                }
                let bytes: Vec<u8> = if n <= 0xFF {
                    vec![n as u8]
                } else if n <= 0xFFFF {
                    vec![(n >> 8) as u8, n as u8]
                } else {
                    return None;
                };
                let s =
                    encoding_rs::GBK.decode_without_bom_handling_and_without_replacement(&bytes)?;
                let mut it = s.chars();
                match (it.next(), it.next()) {
                    (Some(c), None) => Some(c),
                    _ => None,
                }
            }
        }
    }
}

/// Keypad 1–9, 0 as ASCII digits, whatever the NumLock state.
fn keypad_digit(k: u8) -> Option<u8> {
    match k {
        0x59..=0x61 => Some(b'1' + (k - 0x59)),
        0x62 => Some(b'0'),
        _ => None,
    }
}

/// One key press as a byte: US layout, Shift only; Ctrl gives control bytes.
fn key_byte(k: u8, shift: bool, ctrl: bool) -> Option<u8> {
    let b = match k {
        0x04..=0x1D => {
            let c = b'a' + (k - 0x04);
            if shift { c.to_ascii_uppercase() } else { c }
        }
        0x1E..=0x27 => {
            const PLAIN: &[u8; 10] = b"1234567890";
            const SHIFTED: &[u8; 10] = b"!@#$%^&*()";
            let i = (k - 0x1E) as usize;
            if shift { SHIFTED[i] } else { PLAIN[i] }
        }
        0x28 | 0x58 => b'\r',
        0x2B => b'\t',
        0x2C => b' ',
        0x2D..=0x38 => {
            // - = [ ] \ (non-US #) ; ' ` , . /
            const PLAIN: &[u8; 12] = b"-=[]\\\\;'`,./";
            const SHIFTED: &[u8; 12] = b"_+{}||:\"~<>?";
            let i = (k - 0x2D) as usize;
            if shift { SHIFTED[i] } else { PLAIN[i] }
        }
        0x54 => b'/',
        0x55 => b'*',
        0x56 => b'-',
        0x57 => b'+',
        0x59..=0x62 => keypad_digit(k)?,
        0x63 => b'.',
        0x67 => b'=',
        // Esc, Backspace, CapsLock, F-keys, NumLock, arrows …: not text.
        _ => return None,
    };
    if ctrl {
        return match b {
            b'a'..=b'z' => Some(b - b'a' + 1),
            b'A'..=b'Z' => Some(b - b'A' + 1),
            b'[' | b'{' => Some(0x1B),
            b'\\' | b'|' => Some(0x1C),
            b']' | b'}' => Some(0x1D),
            b'^' => Some(0x1E),
            b'_' | b'-' => Some(0x1F),
            b'@' | b'2' => Some(0x00),
            _ => None,
        };
    }
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELEASE: [u8; 8] = [0; 8];
    const LALT: u8 = 0x04;
    const LSHIFT: u8 = 0x02;

    fn press(mods: u8, key: u8) -> [u8; 8] {
        [mods, 0, key, 0, 0, 0, 0, 0]
    }

    /// The report sequence of an Alt+keypad code, as a scanner sends it.
    fn alt_code(digits: &str) -> Vec<[u8; 8]> {
        let mut v = vec![[LALT, 0, 0, 0, 0, 0, 0, 0]];
        for d in digits.bytes() {
            let k = if d == b'0' { 0x62 } else { 0x59 + (d - b'1') };
            v.push(press(LALT, k));
            v.push([LALT, 0, 0, 0, 0, 0, 0, 0]);
        }
        v.push(RELEASE);
        v
    }

    fn decode(mode: AltMode, reports: &[[u8; 8]]) -> Vec<u8> {
        let mut d = KeyboardDecoder::new(mode);
        let mut out = Vec::new();
        for r in reports {
            d.push(r, &mut out);
        }
        out
    }

    #[test]
    fn alt_codes_31508_35760_26412_are_bi_ji_ben() {
        // scanners.md §2.4: Unicode code points in decimal.
        let mut reports = Vec::new();
        for n in ["31508", "35760", "26412"] {
            reports.extend(alt_code(n));
        }
        reports.push(press(0, 0x28));
        reports.push(RELEASE);
        let out = decode(AltMode::Unicode, &reports);
        assert_eq!(String::from_utf8(out).unwrap(), "笔记本\r");
    }

    #[test]
    fn gbk_alt_codes_and_the_leading_zero() {
        // 笔 = GBK B1CA = 45514, 记 = BCC7 = 48327, 本 = B1BE = 45502.
        let mut reports = Vec::new();
        for n in ["45514", "048327", "45502", "029"] {
            reports.extend(alt_code(n));
        }
        let out = decode(AltMode::Gbk, &reports);
        assert_eq!(String::from_utf8(out).unwrap(), "笔记本\u{1d}");
    }

    #[test]
    fn the_linux_dump_alt_keypad_sequence() {
        // scanners.md §2.1: `04 00 62 60 5b 00 00 00` — Alt with KP0, KP8, KP3
        // held together (0, 8, 3 → "083" = 'S'), then the release.
        let out = decode(
            AltMode::Unicode,
            &[
                [0x04, 0, 0x62, 0x60, 0x5b, 0, 0, 0],
                [0x04, 0, 0, 0, 0, 0, 0, 0],
                RELEASE,
            ],
        );
        assert_eq!(out, b"S");
    }

    #[test]
    fn shift_only_us_layout() {
        let reports = [
            press(LSHIFT, 0x04), // A
            RELEASE,
            press(0, 0x04), // a
            RELEASE,
            press(0x20, 0x1F), // RShift+2 = @
            RELEASE,
            press(0, 0x39), // CapsLock: ignored
            RELEASE,
            press(0, 0x05), // b — still lower case
            RELEASE,
            press(0, 0x53), // NumLock: ignored
            RELEASE,
            press(0, 0x59), // KP1 is '1' whatever NumLock says
            RELEASE,
            press(LSHIFT, 0x38), // ?
            RELEASE,
            press(0, 0x2B), // Tab
            RELEASE,
            press(0, 0x58), // Keypad Enter
            RELEASE,
        ];
        assert_eq!(decode(AltMode::Unicode, &reports), b"Aa@b1?\t\r");
    }

    #[test]
    fn repeated_key_needs_a_release_and_held_keys_do_not_repeat() {
        let reports = [
            press(0, 0x1E),
            press(0, 0x1E),
            RELEASE,
            press(0, 0x1E),
            RELEASE,
        ];
        assert_eq!(decode(AltMode::Unicode, &reports), b"11");
        // Two keys in one report, in report order.
        let both = [[0, 0, 0x05, 0x04, 0, 0, 0, 0], RELEASE];
        assert_eq!(decode(AltMode::Unicode, &both), b"ba");
    }

    #[test]
    fn ctrl_bracket_is_gs() {
        let reports = [press(0x01, 0x30), RELEASE];
        assert_eq!(decode(AltMode::Unicode, &reports), [0x1d]);
    }

    #[test]
    fn invalid_alt_sequences_poison_the_frame() {
        let mut reports = alt_code("55296"); // a surrogate: not a char
        reports.extend(alt_code("12345678901")); // 11 digits
        reports.extend(alt_code("33")); // fine: '!'
        let out = decode(AltMode::Unicode, &reports);
        assert_eq!(out, [POISON, POISON, b'!']);
        // 0x81 alone is a GBK lead byte, not a character.
        assert_eq!(decode(AltMode::Gbk, &alt_code("129")), [POISON]);
    }

    #[test]
    fn error_and_short_reports_are_ignored() {
        let reports = [[0, 0, 1, 1, 1, 1, 1, 1], press(0, 0x04), RELEASE];
        assert_eq!(decode(AltMode::Unicode, &reports), b"a");
        let mut d = KeyboardDecoder::new(AltMode::Unicode);
        let mut out = Vec::new();
        d.push(&[], &mut out);
        d.push(&[0, 0], &mut out);
        d.push(&[0, 0, 0x04], &mut out);
        assert_eq!(out, b"a");
    }
}
