//! The keyboard-wedge decoder under arbitrary reports (8-byte chunks), in
//! every Alt-code mode, feeding the framer as the back end does. No panic;
//! output stays proportional to the input.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use scanner_codec::framer::{Framer, FramerConfig, Framing};
use scanner_codec::hid::{AltMode, KeyboardDecoder};

fuzz_target!(|data: &[u8]| {
    for mode in [AltMode::Unicode, AltMode::Gbk, AltMode::Windows1252] {
        let mut d = KeyboardDecoder::new(mode);
        let mut f = Framer::new(FramerConfig {
            framing: Framing::Suffix(b"\r".to_vec()),
            max_frame: 64,
            idle_gap: Duration::from_millis(100),
        });
        let now = Instant::now();
        let mut bytes = Vec::new();
        let mut frames = Vec::new();
        for report in data.chunks(8) {
            let before = bytes.len();
            d.push(report, &mut bytes);
            // At most one character (4 UTF-8 bytes) per newly pressed key, plus one composed.
            assert!(bytes.len() - before <= 6 + 4);
            f.touch(now);
            f.push(&bytes[before..], now, &mut frames);
        }
        let _ = f.poll_idle(now + Duration::from_secs(1));
    }
});
