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
//! - **Alt + keypad digits** compose one character when Alt is released,
//!   read as the configured [`AltMode`] says, so Chinese text in a code
//!   survives. A sequence that is not a character poisons the frame with a
//!   NUL byte, which [`crate::text::decode`] refuses: a code is never
//!   silently altered.
//!
//! ## Alt codes as Windows reads them
//!
//! Scanners imitate Windows, which reads an Alt number in one of two code
//! pages: **Alt+0nnn** (first digit a keypad 0) in the ANSI code page and
//! **Alt+nnn** (no leading zero) in the OEM code page; in a single-byte
//! code page a number over 255 is taken modulo 256 (Alt+321 = Alt+65 =
//! `A`). Sources: Raymond Chen, "The history of Alt+number sequences, and
//! why Alt+9731 sometimes gives you a heart and sometimes a snowman" (The
//! Old New Thing, 2024-07-02: OEM without the zero, ANSI with it, mod 256);
//! Microsoft, the `OEMCP` registry entry (437 for U.S. English, 936 GBK for
//! Chinese). On Chinese Windows, where ANSI and OEM are both 936, Alt+50385
//! (no zero) types 难 (GBK C4D1): a number up to 65535 is a GBK code (the
//! Chinese note "ALT+数字,可输入汉字", copied on many blogs).
//!
//! - [`AltMode::Windows1252`] (U.S./Western Windows): Alt+0nnn is
//!   windows-1252 (`encoding_rs`), Alt+nnn is CP437 (the table below), both
//!   modulo 256: Alt+0233 = Alt+130 = `é`, Alt+0128 = `€`, Alt+386 = `é`.
//!   Values below 128 are ASCII in both pages; 1–31 and 127 stay control
//!   characters (a GUI program on Windows would show CP437's glyphs ☺…▼ and
//!   ⌂ for Alt+1…31 and Alt+127, but a scanner that types Alt+29 means GS,
//!   the GS1 separator, not `↔`). A number that is 0 modulo 256 is invalid.
//! - [`AltMode::Gbk`] (Chinese Windows, ANSI = OEM = 936): both forms are a
//!   GBK code, one byte up to 255 (`A` = 65, `€` = 128) or two bytes
//!   (笔 = 45514 = 0xB1CA); a lead byte alone or a number over 65535
//!   (which Windows would cut to 16 bits) is invalid.
//! - [`AltMode::Unicode`]: the number is a Unicode code point, leading zero
//!   or not, with no modulo (what Word and WordPad do, and what many
//!   Chinese scanners send: Alt+31508 = 笔).
//!
//! Memory: a few bytes of state; an Alt sequence longer than 10 digits is
//! invalid.

/// How an Alt+numpad number becomes a character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AltMode {
    /// The decimal number is a Unicode code point (Alt+31508 = 笔).
    Unicode,
    /// The decimal number is a GBK/CP936 code (Alt+45514 = 0xB1CA = 笔),
    /// with or without a leading zero, as on Chinese Windows.
    Gbk,
    /// As U.S. Windows reads it: Alt+0nnn in windows-1252 (ANSI), Alt+nnn
    /// in CP437 (OEM), modulo 256 (Alt+0233 = Alt+130 = é).
    Windows1252,
}

/// Longest Alt+numpad number accepted.
const MAX_ALT_DIGITS: usize = 10;
/// Byte written for an invalid Alt sequence; [`crate::text::decode`] refuses it.
pub const POISON: u8 = 0x00;

/// CP437 (the U.S. OEM code page) bytes 0x80–0xFF as Unicode, from the
/// Unicode Consortium's mapping `MAPPINGS/VENDORS/MICSFT/PC/CP437.TXT`
/// (cp437_DOSLatinUS, by Microsoft), checked against Python's `cp437`
/// codec, which is generated from that file.
#[rustfmt::skip]
const CP437_HIGH: [char; 128] = [
    '\u{00C7}', '\u{00FC}', '\u{00E9}', '\u{00E2}', '\u{00E4}', '\u{00E0}', '\u{00E5}', '\u{00E7}',  // 0x80
    '\u{00EA}', '\u{00EB}', '\u{00E8}', '\u{00EF}', '\u{00EE}', '\u{00EC}', '\u{00C4}', '\u{00C5}',  // 0x88
    '\u{00C9}', '\u{00E6}', '\u{00C6}', '\u{00F4}', '\u{00F6}', '\u{00F2}', '\u{00FB}', '\u{00F9}',  // 0x90
    '\u{00FF}', '\u{00D6}', '\u{00DC}', '\u{00A2}', '\u{00A3}', '\u{00A5}', '\u{20A7}', '\u{0192}',  // 0x98
    '\u{00E1}', '\u{00ED}', '\u{00F3}', '\u{00FA}', '\u{00F1}', '\u{00D1}', '\u{00AA}', '\u{00BA}',  // 0xA0
    '\u{00BF}', '\u{2310}', '\u{00AC}', '\u{00BD}', '\u{00BC}', '\u{00A1}', '\u{00AB}', '\u{00BB}',  // 0xA8
    '\u{2591}', '\u{2592}', '\u{2593}', '\u{2502}', '\u{2524}', '\u{2561}', '\u{2562}', '\u{2556}',  // 0xB0
    '\u{2555}', '\u{2563}', '\u{2551}', '\u{2557}', '\u{255D}', '\u{255C}', '\u{255B}', '\u{2510}',  // 0xB8
    '\u{2514}', '\u{2534}', '\u{252C}', '\u{251C}', '\u{2500}', '\u{253C}', '\u{255E}', '\u{255F}',  // 0xC0
    '\u{255A}', '\u{2554}', '\u{2569}', '\u{2566}', '\u{2560}', '\u{2550}', '\u{256C}', '\u{2567}',  // 0xC8
    '\u{2568}', '\u{2564}', '\u{2565}', '\u{2559}', '\u{2558}', '\u{2552}', '\u{2553}', '\u{256B}',  // 0xD0
    '\u{256A}', '\u{2518}', '\u{250C}', '\u{2588}', '\u{2584}', '\u{258C}', '\u{2590}', '\u{2580}',  // 0xD8
    '\u{03B1}', '\u{00DF}', '\u{0393}', '\u{03C0}', '\u{03A3}', '\u{03C3}', '\u{00B5}', '\u{03C4}',  // 0xE0
    '\u{03A6}', '\u{0398}', '\u{03A9}', '\u{03B4}', '\u{221E}', '\u{03C6}', '\u{03B5}', '\u{2229}',  // 0xE8
    '\u{2261}', '\u{00B1}', '\u{2265}', '\u{2264}', '\u{2320}', '\u{2321}', '\u{00F7}', '\u{2248}',  // 0xF0
    '\u{00B0}', '\u{2219}', '\u{00B7}', '\u{221A}', '\u{207F}', '\u{00B2}', '\u{25A0}', '\u{00A0}',  // 0xF8
];

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
        // Windows: a leading keypad 0 selects the ANSI code page.
        let ansi = digits.len() > 1 && digits[0] == b'0';
        let ch = if overflow {
            None
        } else {
            self.char_of(n, ansi)
        };
        match ch {
            Some(c) => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
            None => out.push(POISON),
        }
    }

    /// The character of Alt+`n`; `ansi` when it was typed with a leading 0.
    fn char_of(&self, n: u64, ansi: bool) -> Option<char> {
        if n == 0 {
            return None;
        }
        match self.mode {
            AltMode::Windows1252 => windows_1252_or_437((n % 256) as u8, ansi),
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

/// One byte of U.S. Windows' ANSI (windows-1252) or OEM (CP437) code page.
fn windows_1252_or_437(b: u8, ansi: bool) -> Option<char> {
    match b {
        0 => None,
        // ASCII in both; control bytes stay control bytes (module doc).
        0x01..=0x7F => Some(char::from(b)),
        _ if ansi => encoding_rs::WINDOWS_1252
            .decode_without_bom_handling_and_without_replacement(&[b])?
            .chars()
            .next(),
        _ => Some(CP437_HIGH[usize::from(b - 0x80)]),
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

    /// LAlt held, keypad 0 2 3 3 typed (press, release each), LAlt
    /// released: Alt+0233 as a scanner sends it, byte for byte.
    const ALT_0233: [[u8; 8]; 10] = [
        [0x04, 0, 0, 0, 0, 0, 0, 0],
        [0x04, 0, 0x62, 0, 0, 0, 0, 0], // KP0
        [0x04, 0, 0, 0, 0, 0, 0, 0],
        [0x04, 0, 0x5a, 0, 0, 0, 0, 0], // KP2
        [0x04, 0, 0, 0, 0, 0, 0, 0],
        [0x04, 0, 0x5b, 0, 0, 0, 0, 0], // KP3
        [0x04, 0, 0, 0, 0, 0, 0, 0],
        [0x04, 0, 0x5b, 0, 0, 0, 0, 0], // KP3
        [0x04, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0],
    ];

    fn text(mode: AltMode, codes: &[&str]) -> String {
        let reports: Vec<[u8; 8]> = codes.iter().flat_map(|c| alt_code(c)).collect();
        String::from_utf8(decode(mode, &reports)).unwrap()
    }

    #[test]
    fn windows_1252_mode_reads_alt_0nnn_as_ansi_and_alt_nnn_as_oem_437() {
        assert_eq!(decode(AltMode::Windows1252, &ALT_0233), "é".as_bytes());
        // Alt+130 = CP437 0x82 = é; Alt+0130 = windows-1252 0x82 = ‚.
        assert_eq!(text(AltMode::Windows1252, &["130", "0130"]), "é\u{201a}");
        // £ is 156 in CP437 and 0163 in windows-1252; € only in windows-1252.
        assert_eq!(text(AltMode::Windows1252, &["156", "0163", "0128"]), "££€");
        // The upper half of CP437: box drawing, Greek, NBSP.
        assert_eq!(
            text(AltMode::Windows1252, &["201", "231", "255"]),
            "╔τ\u{a0}"
        );
        // ASCII is the same either way; control bytes stay control bytes
        // (GS, the GS1 separator, as Alt+29 or Alt+029).
        assert_eq!(
            text(AltMode::Windows1252, &["65", "065", "29", "029"]),
            "AA\u{1d}\u{1d}"
        );
    }

    #[test]
    fn windows_1252_mode_takes_numbers_over_255_modulo_256() {
        // 321 = 256 + 65; 386 = 256 + 130 (OEM é); 0489 = 256 + 233 (ANSI é);
        // 65601 = 256 × 256 + 65.
        assert_eq!(
            text(
                AltMode::Windows1252,
                &["321", "0321", "386", "0489", "65601"]
            ),
            "AAééA"
        );
        // 0 modulo 256 is no character.
        assert_eq!(decode(AltMode::Windows1252, &alt_code("256")), [POISON]);
        assert_eq!(decode(AltMode::Windows1252, &alt_code("0")), [POISON]);
    }

    #[test]
    fn gbk_mode_reads_both_forms_in_code_page_936() {
        // 难 = C4D1 = 50385, 汉 = BABA = 47802; the leading zero changes
        // nothing (ANSI and OEM are both 936 on Chinese Windows).
        assert_eq!(text(AltMode::Gbk, &["50385", "047802"]), "难汉");
        // Single bytes: ASCII, and 0x80 = € in CP936.
        assert_eq!(text(AltMode::Gbk, &["65", "128", "0128"]), "A€€");
        // A double-byte code is a number over 255, not taken modulo 256.
        assert_eq!(text(AltMode::Gbk, &["45514"]), "笔");
        // Over 16 bits: refused rather than cut.
        assert_eq!(decode(AltMode::Gbk, &alt_code("115921")), [POISON]);
    }

    #[test]
    fn unicode_mode_is_unchanged_by_the_windows_forms() {
        // A code point, leading zero or not, no modulo: Alt+0233 = é,
        // Alt+130 = U+0082 (not CP437's é), Alt+321 = Ł.
        assert_eq!(decode(AltMode::Unicode, &ALT_0233), "é".as_bytes());
        assert_eq!(
            text(AltMode::Unicode, &["130", "321", "029"]),
            "\u{82}Ł\u{1d}"
        );
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
