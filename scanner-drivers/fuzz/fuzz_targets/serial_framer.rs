//! The serial framer under arbitrary bytes, chunking and timing: no panic,
//! no frame over `max_frame`, idle flushes only when due.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use scanner_codec::framer::{FrameEvent, Framer, FramerConfig, Framing};
use scanner_codec::{aim, text};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let framing = match mode % 6 {
        0 => Framing::Suffix(b"\r".to_vec()),
        1 => Framing::Suffix(b"\r\n".to_vec()),
        2 => Framing::Suffix(vec![0x03]),
        3 => Framing::Suffix(b"\t".to_vec()),
        4 => Framing::StxEtx,
        _ => Framing::Idle,
    };
    let max = 16 + (mode as usize >> 3) * 8;
    let mut f = Framer::new(FramerConfig {
        framing,
        max_frame: max,
        idle_gap: Duration::from_millis(50),
    });
    let t0 = Instant::now();
    let mut now = t0;
    let mut out = Vec::new();
    // Chunks: a length byte, then that many bytes; the length's top bit
    // advances the clock past the idle gap.
    let mut i = 0;
    while i < rest.len() {
        let n = (rest[i] & 0x3f) as usize;
        if rest[i] & 0x80 != 0 {
            now += Duration::from_millis(60);
            if let Some(ev) = f.poll_idle(now) {
                out.push(ev);
            }
        } else if rest[i] & 0x40 != 0 {
            f.touch(now);
        }
        let end = (i + 1 + n).min(rest.len());
        f.push(&rest[i + 1..end], now, &mut out);
        i = end;
        if let Some(d) = f.deadline() {
            assert!(d >= t0);
        }
    }
    for ev in out {
        if let FrameEvent::Frame { data, .. } = ev {
            assert!(data.len() <= max, "frame of {} > {max}", data.len());
            let (_, body) = aim::split(&data);
            let _ = text::decode(body);
        }
    }
});
