//! The serial framer: bytes and `now` in, frames out. No I/O, no clock.
//!
//! A serial scanner sends one scan as a run of bytes ended by a suffix (CR,
//! LF, CRLF, Tab, ETX …), wrapped in STX … ETX, or simply followed by
//! silence. The framer cuts the stream accordingly and keeps these promises:
//!
//! - memory is bounded: a frame longer than `max_frame` is dropped whole and
//!   everything up to its end is discarded without being stored;
//! - a partial frame that sits idle for `idle_gap` is flushed (idle framing:
//!   that *is* the end of the scan; suffix framing: the suffix is probably
//!   misconfigured, so it is flushed and marked [`End::Idle`]);
//! - leading CR/LF bytes of a frame are skipped, so a scanner sending CRLF to
//!   a framer configured for CR (or LF) still yields clean frames.

use std::time::{Duration, Instant};

/// How a serial byte stream is cut into scans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// Each scan ends with this byte sequence (CR, LF, CRLF, ETX, Tab …).
    Suffix(Vec<u8>),
    /// Each scan is wrapped in STX … ETX (or STX … EOT).
    StxEtx,
    /// A scan ends when the line is idle for the configured gap.
    Idle,
}

/// Start of text.
pub const STX: u8 = 0x02;
/// End of text.
pub const ETX: u8 = 0x03;
/// End of transmission; some engines end STX frames with it.
pub const EOT: u8 = 0x04;

/// How a frame ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// By the configured suffix or ETX.
    Terminator,
    /// By the line going idle.
    Idle,
}

/// What the framer produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameEvent {
    /// A complete frame, terminator removed.
    Frame {
        /// The frame's bytes.
        data: Vec<u8>,
        /// How it ended.
        end: End,
    },
    /// A frame longer than the maximum was dropped; `len` bytes were discarded.
    TooLong {
        /// Bytes discarded (at least `max_frame + 1`).
        len: usize,
    },
}

/// Framer settings, taken from a `[[scanner]]` entry.
#[derive(Debug, Clone)]
pub struct FramerConfig {
    /// How scans are delimited.
    pub framing: Framing,
    /// Longest frame kept.
    pub max_frame: usize,
    /// Silence that ends (idle framing) or flushes (other framings) a frame.
    pub idle_gap: Duration,
}

/// The framer's state between calls.
#[derive(Debug)]
pub struct Framer {
    cfg: FramerConfig,
    buf: Vec<u8>,
    /// Inside STX … ETX (STX framing only).
    in_frame: bool,
    /// Discarding the rest of an over-long frame; counts discarded bytes.
    discarding: Option<usize>,
    last_byte: Option<Instant>,
}

impl Framer {
    /// A framer with the given settings.
    pub fn new(cfg: FramerConfig) -> Self {
        Framer {
            buf: Vec::with_capacity(cfg.max_frame.min(512)),
            cfg,
            in_frame: false,
            discarding: None,
            last_byte: None,
        }
    }

    /// Feeds bytes that arrived at `now`; complete frames are appended to `out`.
    pub fn push(&mut self, bytes: &[u8], now: Instant, out: &mut Vec<FrameEvent>) {
        if bytes.is_empty() {
            return;
        }
        for &b in bytes {
            self.push_byte(b, out);
        }
        self.last_byte = Some(now);
    }

    /// Notes activity at `now` that carried no bytes yet (a keyboard wedge
    /// composing an Alt code): a pending frame is not idle.
    pub fn touch(&mut self, now: Instant) {
        if self.deadline().is_some() {
            self.last_byte = Some(now);
        }
    }

    fn push_byte(&mut self, b: u8, out: &mut Vec<FrameEvent>) {
        match &self.cfg.framing {
            Framing::Suffix(suffix) => {
                let suffix_len = suffix.len();
                // A stray CR/LF between frames (CRLF sent to a CR or LF config).
                let stray = self.buf.is_empty()
                    && self.discarding.is_none()
                    && (b == b'\r' || b == b'\n')
                    && suffix.as_slice() != [b];
                if stray {
                    return;
                }
                self.store(b);
                if self.ends_with_suffix() {
                    self.finish(suffix_len, End::Terminator, out);
                }
            }
            Framing::StxEtx => {
                if b == STX {
                    // A new STX restarts the frame (resync after a lost ETX).
                    self.buf.clear();
                    self.discarding = None;
                    self.in_frame = true;
                } else if self.in_frame && (b == ETX || b == EOT) {
                    self.in_frame = false;
                    self.finish(0, End::Terminator, out);
                } else if self.in_frame {
                    self.store(b);
                }
                // Bytes outside STX … ETX are noise.
            }
            Framing::Idle => self.store(b),
        }
    }

    fn ends_with_suffix(&self) -> bool {
        match &self.cfg.framing {
            // While discarding, buf holds only the last suffix.len() bytes.
            Framing::Suffix(s) => self.buf.ends_with(s),
            _ => false,
        }
    }

    fn store(&mut self, b: u8) {
        if let Some(n) = self.discarding.as_mut() {
            *n += 1;
            // Keep only enough tail to recognise the suffix.
            if let Framing::Suffix(s) = &self.cfg.framing {
                self.buf.push(b);
                if self.buf.len() > s.len() {
                    let cut = self.buf.len() - s.len();
                    self.buf.drain(..cut);
                }
            }
            return;
        }
        self.buf.push(b);
        let limit = self.cfg.max_frame
            + match &self.cfg.framing {
                Framing::Suffix(s) => s.len(),
                _ => 0,
            };
        if self.buf.len() > limit {
            self.discarding = Some(self.buf.len());
            let keep = match &self.cfg.framing {
                Framing::Suffix(s) => s.len(),
                _ => 0,
            };
            let cut = self.buf.len() - keep;
            self.buf.drain(..cut);
        }
    }

    fn finish(&mut self, suffix_len: usize, end: End, out: &mut Vec<FrameEvent>) {
        if let Some(n) = self.discarding.take() {
            self.buf.clear();
            out.push(FrameEvent::TooLong {
                len: n.saturating_sub(suffix_len),
            });
            return;
        }
        let len = self.buf.len() - suffix_len;
        self.buf.truncate(len);
        if len > self.cfg.max_frame {
            // Flushed by the idle gap while holding max_frame + a partial
            // suffix (found by fuzzing): still over the limit, so dropped.
            self.buf.clear();
            out.push(FrameEvent::TooLong { len });
            return;
        }
        let start = self
            .buf
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(self.buf.len());
        if start < self.buf.len() {
            out.push(FrameEvent::Frame {
                data: self.buf[start..].to_vec(),
                end,
            });
        }
        self.buf.clear();
    }

    /// When [`Framer::poll_idle`] should next be called, if a frame is pending.
    pub fn deadline(&self) -> Option<Instant> {
        let pending = !self.buf.is_empty() || self.discarding.is_some() || self.in_frame;
        if pending {
            self.last_byte.map(|t| t + self.cfg.idle_gap)
        } else {
            None
        }
    }

    /// Ends a pending frame if the line has been idle for `idle_gap` by `now`.
    pub fn poll_idle(&mut self, now: Instant) -> Option<FrameEvent> {
        let deadline = self.deadline()?;
        if now < deadline {
            return None;
        }
        self.in_frame = false;
        let mut out = Vec::with_capacity(1);
        self.finish(0, End::Idle, &mut out);
        out.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framer(framing: Framing, max: usize) -> Framer {
        Framer::new(FramerConfig {
            framing,
            max_frame: max,
            idle_gap: Duration::from_millis(100),
        })
    }

    fn frames(f: &mut Framer, chunks: &[&[u8]]) -> Vec<FrameEvent> {
        let now = Instant::now();
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, now, &mut out);
        }
        out
    }

    fn frame(s: &[u8]) -> FrameEvent {
        FrameEvent::Frame {
            data: s.to_vec(),
            end: End::Terminator,
        }
    }

    #[test]
    fn cr_framing_splits_and_survives_chunking() {
        let mut f = framer(Framing::Suffix(b"\r".to_vec()), 4096);
        let out = frames(&mut f, &[b"]Q1HEL", b"LO\rWOR", b"LD\r"]);
        assert_eq!(out, vec![frame(b"]Q1HELLO"), frame(b"WORLD")]);
    }

    #[test]
    fn crlf_sent_to_a_cr_framer_gives_clean_frames() {
        let mut f = framer(Framing::Suffix(b"\r".to_vec()), 4096);
        let out = frames(&mut f, &[b"AAA\r\nBBB\r\n"]);
        assert_eq!(out, vec![frame(b"AAA"), frame(b"BBB")]);
    }

    #[test]
    fn crlf_framing_keeps_a_lone_cr_inside() {
        let mut f = framer(Framing::Suffix(b"\r\n".to_vec()), 4096);
        let out = frames(&mut f, &[b"A\rB\r", b"\nC\r\n"]);
        assert_eq!(out, vec![frame(b"A\rB"), frame(b"C")]);
    }

    #[test]
    fn etx_suffix() {
        let mut f = framer(Framing::Suffix(vec![ETX]), 4096);
        let out = frames(&mut f, &[b"CODE1\x03CODE2\x03"]);
        assert_eq!(out, vec![frame(b"CODE1"), frame(b"CODE2")]);
    }

    #[test]
    fn stx_etx_ignores_noise_and_resyncs() {
        let mut f = framer(Framing::StxEtx, 4096);
        let out = frames(&mut f, &[b"noise\x02AB", b"C\x03junk\x02LOST\x02OK\x04"]);
        assert_eq!(out, vec![frame(b"ABC"), frame(b"OK")]);
    }

    #[test]
    fn over_long_frame_is_dropped_whole_and_the_next_one_survives() {
        let mut f = framer(Framing::Suffix(b"\r".to_vec()), 16);
        let long = vec![b'9'; 100];
        let out = frames(&mut f, &[&long, b"\rGOOD\r"]);
        assert_eq!(out, vec![FrameEvent::TooLong { len: 100 }, frame(b"GOOD")]);
        assert!(f.buf.capacity() < 200);
    }

    #[test]
    fn frame_of_exactly_max_is_kept() {
        let mut f = framer(Framing::Suffix(b"\r\n".to_vec()), 4);
        let out = frames(&mut f, &[b"ABCD\r\n"]);
        assert_eq!(out, vec![frame(b"ABCD")]);
    }

    #[test]
    fn idle_framing_flushes_after_the_gap() {
        let mut f = framer(Framing::Idle, 4096);
        let t0 = Instant::now();
        let mut out = Vec::new();
        f.push(b"4243754826", t0, &mut out);
        f.push(
            b"492874240001130000",
            t0 + Duration::from_millis(10),
            &mut out,
        );
        assert!(out.is_empty());
        assert_eq!(f.deadline(), Some(t0 + Duration::from_millis(110)));
        assert_eq!(f.poll_idle(t0 + Duration::from_millis(50)), None);
        assert_eq!(
            f.poll_idle(t0 + Duration::from_millis(110)),
            Some(FrameEvent::Frame {
                data: b"4243754826492874240001130000".to_vec(),
                end: End::Idle
            })
        );
        assert_eq!(f.deadline(), None);
    }

    #[test]
    fn touch_keeps_a_pending_frame_from_going_idle() {
        let mut f = framer(Framing::Suffix(b"\r".to_vec()), 4096);
        let t0 = Instant::now();
        let mut out = Vec::new();
        f.push(b"YB-42", t0, &mut out);
        f.touch(t0 + Duration::from_millis(90));
        assert_eq!(f.poll_idle(t0 + Duration::from_millis(150)), None);
        f.push("笔\r".as_bytes(), t0 + Duration::from_millis(180), &mut out);
        assert_eq!(out, vec![frame("YB-42笔".as_bytes())]);
        // With nothing pending, touch arms nothing.
        f.touch(t0 + Duration::from_millis(200));
        assert_eq!(f.deadline(), None);
    }

    #[test]
    fn the_same_code_framed_by_crlf_and_by_etx() {
        // A QR payload with a line break inside: CRLF framing cuts it, ETX
        // framing keeps it whole (scanners.md §3.2).
        let payload = b"]Q1LINE1\r\nLINE2";
        let mut crlf = framer(Framing::Suffix(b"\r\n".to_vec()), 4096);
        let mut bytes = payload.to_vec();
        bytes.extend_from_slice(b"\r\n");
        assert_eq!(
            frames(&mut crlf, &[&bytes]),
            vec![frame(b"]Q1LINE1"), frame(b"LINE2")]
        );
        let mut etx = framer(Framing::Suffix(vec![ETX]), 4096);
        let mut bytes = payload.to_vec();
        bytes.push(ETX);
        assert_eq!(frames(&mut etx, &[&bytes]), vec![frame(payload)]);
    }

    #[test]
    fn suffix_framing_flushes_a_stuck_partial_frame_as_idle() {
        let mut f = framer(Framing::Suffix(b"\r".to_vec()), 4096);
        let t0 = Instant::now();
        let mut out = Vec::new();
        f.push(b"NOSUFFIX", t0, &mut out);
        assert_eq!(
            f.poll_idle(t0 + Duration::from_secs(1)),
            Some(FrameEvent::Frame {
                data: b"NOSUFFIX".to_vec(),
                end: End::Idle
            })
        );
    }

    #[test]
    fn idle_flush_never_yields_more_than_max_frame() {
        // Fuzz finding: 17 bytes under CRLF framing with max 16 sat below
        // the discard threshold (max + suffix) and were flushed whole.
        let mut f = framer(Framing::Suffix(b"\r\n".to_vec()), 16);
        let t0 = Instant::now();
        let mut out = Vec::new();
        f.push(&[b'x'; 17], t0, &mut out);
        assert_eq!(
            f.poll_idle(t0 + Duration::from_secs(1)),
            Some(FrameEvent::TooLong { len: 17 })
        );
        f.push(b"OK\r\n", t0 + Duration::from_secs(2), &mut out);
        assert_eq!(out, vec![frame(b"OK")]);
    }

    #[test]
    fn idle_flush_of_an_over_long_frame_reports_it() {
        let mut f = framer(Framing::Idle, 8);
        let t0 = Instant::now();
        let mut out = Vec::new();
        f.push(&[b'x'; 20], t0, &mut out);
        assert_eq!(
            f.poll_idle(t0 + Duration::from_secs(1)),
            Some(FrameEvent::TooLong { len: 20 })
        );
    }

    proptest::proptest! {
        #[test]
        fn memory_stays_bounded_and_nothing_panics(
            chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..300), 0..40),
            framing in proptest::sample::select(vec![
                Framing::Suffix(b"\r".to_vec()),
                Framing::Suffix(b"\r\n".to_vec()),
                Framing::StxEtx,
                Framing::Idle,
            ]),
        ) {
            let mut f = framer(framing, 64);
            let t0 = Instant::now();
            let mut out = Vec::new();
            for (i, c) in chunks.iter().enumerate() {
                f.push(c, t0 + Duration::from_millis(i as u64 * 30), &mut out);
                proptest::prop_assert!(f.buf.len() <= 66);
                let _ = f.poll_idle(t0 + Duration::from_millis(i as u64 * 30 + 15));
            }
            for e in &out {
                if let FrameEvent::Frame { data, .. } = e {
                    proptest::prop_assert!(data.len() <= 64);
                }
            }
        }
    }
}
