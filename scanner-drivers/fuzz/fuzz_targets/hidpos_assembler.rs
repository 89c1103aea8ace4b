//! HID-POS: an arbitrary report descriptor, then arbitrary reports through
//! the assembler, whose held-scan deadline is polled as the back end does
//! (or not, to reach the stale path). No panic; no scan over `max_frame`; a
//! deadline only while something is held, none after it is polled; every
//! trigger report has the length the descriptor declares.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use scanner_codec::hid::{PosAssembler, PosEvent, PosLayout, descriptor};

/// The 57-byte descriptor of scanners.md §6.3, used when the input asks for it.
const POS57: [u8; 57] = [
    0x05, 0x8c, 0x09, 0x02, 0xa1, 0x01, 0x85, 0x02, 0x15, 0x00, 0x26, 0xff, 0x00, 0x75, 0x08, 0x95,
    0x01, 0x05, 0x01, 0x09, 0x3b, 0x81, 0x02, 0x95, 0x03, 0x05, 0x8c, 0x09, 0xfb, 0x09, 0xfc, 0x09,
    0xfd, 0x81, 0x02, 0x95, 0x38, 0x09, 0xfe, 0x82, 0x02, 0x01, 0x25, 0x01, 0x75, 0x01, 0x95, 0x01,
    0x09, 0xff, 0x81, 0x02, 0x75, 0x07, 0x81, 0x03, 0xc0,
];

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    // Byte 0: descriptor length (0 = the spec's descriptor); then the
    // descriptor; then reports, each a length byte and its bytes.
    let dlen = data[0] as usize;
    let (desc, rest): (&[u8], &[u8]) = if dlen == 0 {
        (&POS57, &data[1..])
    } else {
        let end = (1 + dlen).min(data.len());
        (&data[1..end], &data[end..])
    };
    let _ = descriptor::parse(desc);
    let Ok(layout) = PosLayout::from_descriptor(desc) else {
        return;
    };
    if let Some(t) = &layout.trigger {
        for (a, b) in [(true, false), (false, true), (true, true)] {
            if let Some(r) = layout.trigger_report(a, b) {
                assert_eq!(r.len(), t.len);
            }
        }
    }
    let max = 100;
    let mut asm = PosAssembler::new(layout, max, Duration::from_millis(500))
        .with_continued_timeout(Duration::from_millis(50));
    let t0 = Instant::now();
    let mut out = Vec::new();
    let mut i = 0;
    let mut k = 0u64;
    while i < rest.len() {
        let n = rest[i] as usize;
        let end = (i + 1 + n).min(rest.len());
        // Report spacing: same instant, within the quiet gap, past it, past
        // the stale gap.
        k += [0, 40, 60, 600][usize::from(rest[i] & 3)];
        let now = t0 + Duration::from_millis(k);
        // Bit 2 clear: the back end's timer fired first when it was due.
        if rest[i] & 4 == 0 && asm.deadline().is_some_and(|d| d <= now) {
            if let Some(ev) = asm.poll(now) {
                out.push(ev);
            }
            assert!(asm.deadline().is_none());
        }
        asm.push(&rest[i + 1..end], now, &mut out);
        i = end;
    }
    if let Some(d) = asm.deadline() {
        assert!(d >= t0);
        out.extend(asm.poll(d));
        assert!(asm.deadline().is_none());
    }
    for ev in out {
        if let PosEvent::Scan { data, .. } = ev {
            assert!(data.len() <= max);
            assert!(!data.is_empty());
        }
    }
});
