//! HID-POS scanners (usage page 0x8C): where a scan lives in the input
//! report, reassembly of multi-report scans, and the trigger/beep report.
//!
//! The layout is read from the report descriptor ([`PosLayout::from_descriptor`]):
//! the Decoded Data field (0x8C:0xFE), the three Symbology Identifier bytes
//! (0xFB–0xFD), the Decode Data Continued bit (0xFF) and an optional Byte
//! Count (Generic Desktop 0x3B). Without a Byte Count the data's NUL padding
//! is trimmed. [`PosAssembler`] joins reports until the Continued bit is
//! clear; a scan longer than `max_frame` is dropped whole.
//!
//! **A Continued bit with nothing after it.** A clone firmware common in
//! Chinese scanners sets Decode Data Continued on the *final* report when
//! its chunk is exactly full (56 data bytes in the usual layout) and then
//! sends nothing more, so a 56-, 112-, … byte code would wait for the next
//! scan and be joined to it or dropped with it. A scan whose last report
//! filled its Decoded Data field with Continued set is therefore *held*:
//! [`PosAssembler::deadline`] says until when, and [`PosAssembler::poll`]
//! delivers it once that much quiet has passed (the caller arms a timer
//! only while something is held). A continuation arriving within the quiet
//! gap is joined as before; a report with a short chunk and Continued set
//! (no firmware ends a scan that way) is not held, as before.

use std::time::{Duration, Instant};

use super::descriptor::{Descriptor, DescriptorError, Field, ReportKind, parse};
use crate::aim::{self, Symbology};

/// The Bar Code Scanner usage page.
pub const PAGE_POS: u32 = 0x8C;
/// Decoded Data (buffered bytes).
pub const DECODED_DATA: u32 = PAGE_POS << 16 | 0xFE;
/// Decode Data Continued (one bit).
pub const DATA_CONTINUED: u32 = PAGE_POS << 16 | 0xFF;
/// Symbology Identifier 1, 2, 3.
pub const SYMBOLOGY: [u32; 3] = [
    PAGE_POS << 16 | 0xFB,
    PAGE_POS << 16 | 0xFC,
    PAGE_POS << 16 | 0xFD,
];
/// Generic Desktop Byte Count.
pub const BYTE_COUNT: u32 = 0x0001_003B;
/// Initiate Barcode Read (output bit).
pub const INITIATE_READ: u32 = PAGE_POS << 16 | 0x60;
/// Sound Good Read Beep (output bit).
pub const GOOD_READ_BEEP: u32 = PAGE_POS << 16 | 0x86;

/// A byte range inside a raw report (the ID byte, when used, is byte 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes {
    /// First byte.
    pub offset: usize,
    /// Length in bytes.
    pub len: usize,
}

/// One bit inside a raw report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bit {
    /// Byte index.
    pub byte: usize,
    /// Bit within the byte (0 = least significant).
    pub bit: u8,
}

impl Bit {
    fn get(self, report: &[u8]) -> bool {
        report
            .get(self.byte)
            .is_some_and(|b| b >> self.bit & 1 == 1)
    }
}

/// The output report that triggers a read and sounds the good-read beep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerLayout {
    /// Report ID (0 when the device uses none).
    pub report_id: u8,
    /// Report length including the ID byte (when used).
    pub len: usize,
    /// The Initiate Barcode Read bit, if offered.
    pub initiate: Option<Bit>,
    /// The Sound Good Read Beep bit, if offered.
    pub beep: Option<Bit>,
}

/// Where a scan lives in a HID-POS input report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PosLayout {
    /// Report ID of the scanned-data report (0 when the device uses none).
    pub report_id: u8,
    /// Whether raw reports start with the ID byte.
    pub id_byte: bool,
    /// The Decoded Data field.
    pub data: Bytes,
    /// The Byte Count of valid data bytes in this report, if declared.
    pub byte_count: Option<Bytes>,
    /// The three symbology identifier bytes, if declared.
    pub symbology: Option<[usize; 3]>,
    /// The Decode Data Continued bit, if declared.
    pub continued: Option<Bit>,
    /// The trigger/beep output report, if the descriptor offers one.
    pub trigger: Option<TriggerLayout>,
}

/// Why a descriptor does not describe a usable HID-POS scanner.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// The descriptor itself is malformed.
    #[error(transparent)]
    Descriptor(#[from] DescriptorError),
    /// No Decoded Data (0x8C:0xFE) input field.
    #[error("no Decoded Data field (usage 0x8C:0xFE) in any input report")]
    NoDecodedData,
    /// A byte field that does not start on a byte boundary or is not 8-bit.
    #[error("field for usage {usage:#010x} is not byte-aligned")]
    Unaligned {
        /// The usage.
        usage: u32,
    },
}

fn byte_field(f: &Field, elem: usize, id_byte: bool, usage: u32) -> Result<usize, LayoutError> {
    if f.bit_size != 8 || !f.bit_offset.is_multiple_of(8) {
        return Err(LayoutError::Unaligned { usage });
    }
    Ok(usize::from(id_byte) + f.bit_offset / 8 + elem)
}

fn bit_of(f: &Field, elem: usize, id_byte: bool) -> Bit {
    let bit = f.bit_offset + elem * f.bit_size;
    Bit {
        byte: usize::from(id_byte) + bit / 8,
        bit: (bit % 8) as u8,
    }
}

impl PosLayout {
    /// Reads the layout from a raw report descriptor.
    pub fn from_descriptor(desc: &[u8]) -> Result<PosLayout, LayoutError> {
        Self::from_parsed(&parse(desc)?)
    }

    /// Reads the layout from a parsed descriptor.
    pub fn from_parsed(d: &Descriptor) -> Result<PosLayout, LayoutError> {
        let id_byte = d.uses_report_ids;
        let (df, _) = d
            .find(ReportKind::Input, DECODED_DATA)
            .ok_or(LayoutError::NoDecodedData)?;
        let id = df.report_id;
        if !df.bit_offset.is_multiple_of(8) || !df.bit_size.is_multiple_of(8) {
            return Err(LayoutError::Unaligned {
                usage: DECODED_DATA,
            });
        }
        let data = Bytes {
            offset: usize::from(id_byte) + df.bit_offset / 8,
            len: df.total_bits() / 8,
        };
        let byte_count = match d.find_in(ReportKind::Input, id, BYTE_COUNT) {
            Some((f, e)) => Some(Bytes {
                offset: byte_field(f, e, id_byte, BYTE_COUNT)?,
                len: 1,
            }),
            None => None,
        };
        let mut sym = [0usize; 3];
        let mut found = 0;
        for (k, u) in SYMBOLOGY.iter().enumerate() {
            if let Some((f, e)) = d.find_in(ReportKind::Input, id, *u) {
                sym[k] = byte_field(f, e, id_byte, *u)?;
                found += 1;
            }
        }
        let continued = d
            .find_in(ReportKind::Input, id, DATA_CONTINUED)
            .map(|(f, e)| bit_of(f, e, id_byte));
        let trigger = trigger_layout(d);
        Ok(PosLayout {
            report_id: id,
            id_byte,
            data,
            byte_count,
            symbology: (found == 3).then_some(sym),
            continued,
            trigger,
        })
    }

    /// The output report asking for a read (`initiate`) and/or a beep, if
    /// the device offers those bits.
    pub fn trigger_report(&self, initiate: bool, beep: bool) -> Option<Vec<u8>> {
        let t = self.trigger.as_ref()?;
        let mut r = vec![0u8; t.len];
        if self.id_byte {
            r[0] = t.report_id;
        }
        let mut any = false;
        for (want, bit) in [(initiate, t.initiate), (beep, t.beep)] {
            if let (true, Some(b)) = (want, bit)
                && let Some(byte) = r.get_mut(b.byte)
            {
                *byte |= 1 << b.bit;
                any = true;
            }
        }
        any.then_some(r)
    }
}

fn trigger_layout(d: &Descriptor) -> Option<TriggerLayout> {
    let one_bit = |u| {
        d.fields
            .iter()
            .filter(|f| f.kind == ReportKind::Output && !f.is_constant() && f.bit_size == 1)
            .find_map(|f| {
                f.element_with(u)
                    .map(|e| (f.report_id, bit_of(f, e, d.uses_report_ids)))
            })
    };
    let initiate = one_bit(INITIATE_READ);
    let beep = one_bit(GOOD_READ_BEEP);
    let report_id = initiate.or(beep)?.0;
    Some(TriggerLayout {
        report_id,
        len: d.report_len(ReportKind::Output, report_id),
        initiate: initiate.filter(|(id, _)| *id == report_id).map(|(_, b)| b),
        beep: beep.filter(|(id, _)| *id == report_id).map(|(_, b)| b),
    })
}

/// The default quiet gap after which a held scan is delivered
/// ([`PosAssembler::with_continued_timeout`]).
///
/// 50 ms sits between the two mistakes it must avoid, with the same margin
/// (about 6×) from each: the reports of one multi-report scan arrive every
/// USB poll interval, 1 ms on a full-speed scanner and 8 ms at most in the
/// firmware we know (Honeywell's default `bInterval`), so a real
/// continuation is never taken for the end of a scan; two scans by a person
/// are at least ~300 ms apart, so a new scan is never joined to a held one.
/// The delay it adds to a 56-, 112-, … byte code is not noticeable at a till.
pub const DEFAULT_CONTINUED_TIMEOUT: Duration = Duration::from_millis(50);

/// What the assembler produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PosEvent {
    /// A complete scan.
    Scan {
        /// The decoded data, all reports joined, AIM prefix removed.
        data: Vec<u8>,
        /// The symbology, from the identifier bytes or an AIM prefix in the data.
        symbology: Option<Symbology>,
    },
    /// A scan longer than `max_frame` was dropped; `len` bytes were discarded.
    TooLong {
        /// Bytes discarded.
        len: usize,
    },
    /// A partial scan was dropped because its continuation never came.
    Stale {
        /// Bytes discarded.
        len: usize,
    },
}

/// Joins HID-POS input reports into scans. Sans-IO: reports and `now` in.
#[derive(Debug)]
pub struct PosAssembler {
    layout: PosLayout,
    max_frame: usize,
    gap: Duration,
    continued_timeout: Duration,
    buf: Vec<u8>,
    discarded: Option<usize>,
    symbology: Option<Symbology>,
    last: Option<Instant>,
    /// The last report had Continued set on a full chunk: the scan may
    /// already be complete (the clone firmware's final report).
    held_full: bool,
}

impl PosAssembler {
    /// An assembler for `layout`; scans over `max_frame` bytes are dropped;
    /// a partial scan older than `gap` is dropped when the next report comes
    /// (unless [`PosAssembler::poll`] delivered it first, see
    /// [`PosAssembler::deadline`]). A held scan is delivered after
    /// [`DEFAULT_CONTINUED_TIMEOUT`] of quiet unless set otherwise.
    pub fn new(layout: PosLayout, max_frame: usize, gap: Duration) -> Self {
        PosAssembler {
            layout,
            max_frame,
            gap,
            continued_timeout: DEFAULT_CONTINUED_TIMEOUT,
            buf: Vec::new(),
            discarded: None,
            symbology: None,
            last: None,
            held_full: false,
        }
    }

    /// Sets the quiet gap after which a held scan (last chunk full,
    /// Continued set, nothing since) is delivered by [`PosAssembler::poll`].
    pub fn with_continued_timeout(mut self, quiet: Duration) -> Self {
        self.continued_timeout = quiet;
        self
    }

    /// The layout in use.
    pub fn layout(&self) -> &PosLayout {
        &self.layout
    }

    /// Forgets a partial scan (after a reconnect).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.discarded = None;
        self.symbology = None;
        self.last = None;
        self.held_full = false;
    }

    /// When a held scan is due: the last report's time plus the quiet gap,
    /// while a scan whose last chunk was full with Continued set waits for
    /// more. `None` otherwise (idle, or mid-scan after a short chunk), so a
    /// caller's timer runs only while a scan is held.
    pub fn deadline(&self) -> Option<Instant> {
        let holding = !self.buf.is_empty() || self.discarded.is_some();
        if !(self.held_full && holding) {
            return None;
        }
        self.last.map(|t| t + self.continued_timeout)
    }

    /// Delivers the held scan if its [`PosAssembler::deadline`] has passed
    /// by `now` (a `TooLong` when it was over `max_frame`); `None` when
    /// nothing is due.
    pub fn poll(&mut self, now: Instant) -> Option<PosEvent> {
        if self.deadline().is_some_and(|d| now >= d) {
            self.finish()
        } else {
            None
        }
    }

    /// Feeds one raw report (ID byte first when the device uses IDs) that
    /// arrived at `now`. Reports of other IDs are ignored.
    pub fn push(&mut self, report: &[u8], now: Instant, out: &mut Vec<PosEvent>) {
        if self.layout.id_byte && report.first() != Some(&self.layout.report_id) {
            return;
        }
        if let Some(last) = self.last
            && now.saturating_duration_since(last) > self.gap
            && (!self.buf.is_empty() || self.discarded.is_some())
        {
            let len = self.buf.len() + self.discarded.unwrap_or(0);
            self.reset();
            out.push(PosEvent::Stale { len });
        }
        self.last = Some(now);
        let l = &self.layout;
        let start = l.data.offset.min(report.len());
        let end = (l.data.offset + l.data.len).min(report.len());
        let field = &report[start..end];
        let chunk = match l.byte_count {
            Some(bc) => {
                let n = report.get(bc.offset).copied().unwrap_or(0) as usize;
                &field[..n.min(field.len())]
            }
            None => {
                let n = field.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
                &field[..n]
            }
        };
        let more = l.continued.is_some_and(|b| b.get(report));
        let full = !chunk.is_empty() && chunk.len() == l.data.len;
        let first = self.buf.is_empty() && self.discarded.is_none();
        if first && let Some(pos) = l.symbology {
            self.symbology = symbology_from(pos.map(|p| report.get(p).copied().unwrap_or(0)));
        }
        match self.discarded.as_mut() {
            Some(n) => *n += chunk.len(),
            None if self.buf.len() + chunk.len() > self.max_frame => {
                self.discarded = Some(self.buf.len() + chunk.len());
                self.buf = Vec::new();
            }
            None => self.buf.extend_from_slice(chunk),
        }
        if more {
            self.held_full = full;
            return;
        }
        out.extend(self.finish());
    }

    /// Ends the scan being assembled: a scan, a `TooLong`, or nothing (no
    /// data); the assembler is then idle.
    fn finish(&mut self) -> Option<PosEvent> {
        if let Some(len) = self.discarded.take() {
            self.reset();
            return Some(PosEvent::TooLong { len });
        }
        let data = std::mem::take(&mut self.buf);
        let symbology = self.symbology.take();
        self.reset();
        if data.is_empty() {
            return None;
        }
        let (in_data, rest) = aim::split(&data);
        let (symbology, data) = match (symbology, in_data) {
            (Some(s), _) => (Some(s), data),
            (None, Some(s)) => (Some(s), rest.to_vec()),
            (None, None) => (None, data),
        };
        // An identifier with no data (fuzz finding) is not a scan.
        (!data.is_empty()).then_some(PosEvent::Scan { data, symbology })
    }
}

/// The three identifier bytes as an AIM identifier (`]Q1`), if they are one.
fn symbology_from(b: [u8; 3]) -> Option<Symbology> {
    aim::split(&b).0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 57-byte HID-POS descriptor of scanners.md §6.3: Byte Count,
    /// 3 symbology bytes, 56 data bytes, the Continued bit; no vendor bytes.
    const POS57: [u8; 57] = [
        0x05, 0x8c, 0x09, 0x02, 0xa1, 0x01, 0x85, 0x02, 0x15, 0x00, 0x26, 0xff, 0x00, 0x75, 0x08,
        0x95, 0x01, 0x05, 0x01, 0x09, 0x3b, 0x81, 0x02, 0x95, 0x03, 0x05, 0x8c, 0x09, 0xfb, 0x09,
        0xfc, 0x09, 0xfd, 0x81, 0x02, 0x95, 0x38, 0x09, 0xfe, 0x82, 0x02, 0x01, 0x25, 0x01, 0x75,
        0x01, 0x95, 0x01, 0x09, 0xff, 0x81, 0x02, 0x75, 0x07, 0x81, 0x03, 0xc0,
    ];

    /// A Honeywell/Access-IS style descriptor (scanners.md §1.2–1.3): the
    /// same fields plus the vendor HHP Code ID and a reserved byte before the
    /// Continued byte (64-byte reports), and output report 4 (trigger/beep).
    pub(crate) fn honeywell_desc() -> Vec<u8> {
        let mut d = vec![
            0x05, 0x8c, 0x09, 0x02, 0xa1, 0x01, // Usage Page POS, Bar Code Scanner, App
            0x09, 0x12, 0xa1, 0x02, // Scanned Data Report, Logical
            0x85, 0x02, 0x15, 0x00, 0x26, 0xff, 0x00, 0x75, 0x08, // ID 2, 0..255, 8 bits
            0x95, 0x01, 0x05, 0x01, 0x09, 0x3b, 0x81, 0x02, // Byte Count
            0x95, 0x03, 0x05, 0x8c, 0x09, 0xfb, 0x09, 0xfc, 0x09, 0xfd, 0x81, 0x02, // AIM
            0x95, 0x38, 0x09, 0xfe, 0x82, 0x02, 0x01, // 56 data bytes
            0x06, 0x66, 0xff, 0x95, 0x01, 0x09, 0x04, 0x81, 0x02, // HHP Code ID
            0x95, 0x01, 0x81, 0x03, // reserved
            0x05, 0x8c, 0x25, 0x01, 0x75, 0x01, 0x95, 0x08, 0x09, 0xff, 0x81,
            0x02, // continued
            0xc0, // end Scanned Data Report
            0x09, 0x14, 0xa1, 0x02, 0x85, 0x04, // Trigger Report, ID 4
            0x75, 0x01, 0x95, 0x08, 0x25, 0x01, // 8 one-bit fields
            0x09, 0x00, 0x09, 0x5f, 0x09, 0x60, 0x09, 0x00, 0x09, 0x00, 0x09, 0x85, 0x09, 0x86,
            0x09, 0x00, 0x91, 0x02, 0xc0, // undefined, Prevent, Initiate, -, -, Err, Good, -
            0xc0,
        ];
        d.shrink_to_fit();
        d
    }

    /// Access-IS worked example, report 1: `02 38 ]Q0 <56 bytes> 's' 00 01`.
    fn access_is_reports(code: &[u8]) -> (Vec<u8>, Vec<u8>) {
        assert_eq!(code.len(), 60);
        let mut r1 = vec![0x02, 0x38, b']', b'Q', b'0'];
        r1.extend_from_slice(&code[..56]);
        r1.extend_from_slice(&[b's', 0x00, 0x01]);
        let mut r2 = vec![0x02, 0x04, b']', b'Q', b'0'];
        r2.extend_from_slice(&code[56..]);
        r2.extend_from_slice(&[0u8; 52]);
        r2.extend_from_slice(&[b's', 0x00, 0x00]);
        assert_eq!((r1.len(), r2.len()), (64, 64));
        (r1, r2)
    }

    fn assemble(layout: PosLayout, max: usize, reports: &[&[u8]]) -> Vec<PosEvent> {
        let mut a = PosAssembler::new(layout, max, Duration::from_millis(500));
        let t0 = Instant::now();
        let mut out = Vec::new();
        for r in reports {
            a.push(r, t0, &mut out);
        }
        out
    }

    #[test]
    fn honeywell_layout_comes_from_the_descriptor() {
        let l = PosLayout::from_descriptor(&honeywell_desc()).unwrap();
        assert_eq!(l.report_id, 2);
        assert_eq!(l.byte_count, Some(Bytes { offset: 1, len: 1 }));
        assert_eq!(l.symbology, Some([2, 3, 4]));
        assert_eq!(l.data, Bytes { offset: 5, len: 56 });
        assert_eq!(l.continued, Some(Bit { byte: 63, bit: 0 }));
        let t = l.trigger.clone().unwrap();
        assert_eq!((t.report_id, t.len), (4, 2));
        assert_eq!(t.initiate, Some(Bit { byte: 1, bit: 2 }));
        assert_eq!(t.beep, Some(Bit { byte: 1, bit: 6 }));
        assert_eq!(l.trigger_report(true, false), Some(vec![0x04, 0x04]));
        assert_eq!(l.trigger_report(true, true), Some(vec![0x04, 0x44]));
        assert_eq!(l.trigger_report(false, false), None);
    }

    #[test]
    fn access_is_two_report_example_is_reassembled() {
        let code: Vec<u8> = (0..60).map(|i| b'A' + (i % 26) as u8).collect();
        let (r1, r2) = access_is_reports(&code);
        let l = PosLayout::from_descriptor(&honeywell_desc()).unwrap();
        let out = assemble(l, 4096, &[&r1, &r2]);
        assert_eq!(
            out,
            vec![PosEvent::Scan {
                data: code,
                symbology: Some(Symbology {
                    code: b'Q',
                    modifier: b'0'
                }),
            }]
        );
    }

    #[test]
    fn spec_descriptor_reads_the_62_byte_hidraw_report() {
        // scanners.md §6.3: `02 05 5D 51 31 48 45 4C 4C 4F …` (62 bytes).
        let mut r = vec![0x02, 0x05, 0x5d, 0x51, 0x31, b'H', b'E', b'L', b'L', b'O'];
        r.resize(62, 0);
        let l = PosLayout::from_descriptor(&POS57).unwrap();
        assert_eq!(l.continued, Some(Bit { byte: 61, bit: 0 }));
        assert!(l.trigger.is_none());
        let out = assemble(l, 4096, &[&r]);
        match &out[..] {
            [PosEvent::Scan { data, symbology }] => {
                assert_eq!(data, b"HELLO");
                assert_eq!(symbology.unwrap().as_aim(), "]Q1");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nul_padded_report_without_byte_count() {
        // No Byte Count, no symbology bytes, no report ID: 56 data bytes + continued byte.
        let desc = [
            0x05, 0x8c, 0x09, 0x02, 0xa1, 0x01, 0x15, 0x00, 0x26, 0xff, 0x00, 0x75, 0x08, 0x95,
            0x38, 0x09, 0xfe, 0x82, 0x02, 0x01, 0x25, 0x01, 0x75, 0x01, 0x95, 0x01, 0x09, 0xff,
            0x81, 0x02, 0x75, 0x07, 0x81, 0x03, 0xc0,
        ];
        let l = PosLayout::from_descriptor(&desc).unwrap();
        assert_eq!((l.byte_count, l.symbology, l.id_byte), (None, None, false));
        assert_eq!(l.data, Bytes { offset: 0, len: 56 });
        let mut r1 = b"]Q1424375482649287424".to_vec();
        r1.resize(56, 0);
        r1.push(1);
        let mut r2 = b"0001130000".to_vec();
        r2.resize(57, 0);
        let out = assemble(l, 4096, &[&r1, &r2]);
        match &out[..] {
            [PosEvent::Scan { data, symbology }] => {
                // NUL padding trimmed, AIM prefix taken from the data.
                assert_eq!(data, b"4243754826492874240001130000");
                assert_eq!(symbology.unwrap().as_aim(), "]Q1");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn over_long_scan_is_dropped_whole_and_the_next_survives() {
        let l = PosLayout::from_descriptor(&honeywell_desc()).unwrap();
        let code: Vec<u8> = vec![b'7'; 60];
        let (r1, r2) = access_is_reports(&code);
        let (g1, g2) = access_is_reports(&[b'G'; 60]);
        let out = assemble(l, 60, &[&r1, &r1, &r2, &g1[..], &g2]);
        assert_eq!(out[0], PosEvent::TooLong { len: 116 });
        assert!(matches!(&out[1], PosEvent::Scan { data, .. } if data.len() == 60));
    }

    #[test]
    fn stale_partial_scan_is_dropped() {
        let l = PosLayout::from_descriptor(&honeywell_desc()).unwrap();
        let (r1, _) = access_is_reports(&[b'1'; 60]);
        let (g1, g2) = access_is_reports(&[b'2'; 60]);
        let mut a = PosAssembler::new(l, 4096, Duration::from_millis(500));
        let t0 = Instant::now();
        let mut out = Vec::new();
        a.push(&r1, t0, &mut out);
        a.push(&g1, t0 + Duration::from_secs(2), &mut out);
        a.push(&g2, t0 + Duration::from_secs(2), &mut out);
        assert_eq!(out[0], PosEvent::Stale { len: 56 });
        assert!(matches!(&out[1], PosEvent::Scan { data, .. } if data == &[b'2'; 60]));
    }

    /// One Honeywell-layout report (64 bytes): ID 2, Byte Count, `]Q1`,
    /// `chunk` NUL-padded to 56 bytes, HHP id `s`, reserved, Continued.
    fn report(chunk: &[u8], continued: bool) -> Vec<u8> {
        assert!(chunk.len() <= 56);
        let mut r = vec![0x02, chunk.len() as u8, b']', b'Q', b'1'];
        r.extend_from_slice(chunk);
        r.resize(61, 0);
        r.extend_from_slice(&[b's', 0x00, u8::from(continued)]);
        r
    }

    fn qr(data: &[u8]) -> PosEvent {
        PosEvent::Scan {
            data: data.to_vec(),
            symbology: Some(Symbology {
                code: b'Q',
                modifier: b'1',
            }),
        }
    }

    fn honeywell() -> PosAssembler {
        let l = PosLayout::from_descriptor(&honeywell_desc()).unwrap();
        PosAssembler::new(l, 4096, Duration::from_millis(500))
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_56_byte_code_ending_in_continued_is_delivered_after_the_quiet_gap() {
        // The clone firmware: one full report, Continued set, then nothing.
        let code: Vec<u8> = (0..56).map(|i| b'0' + (i % 10) as u8).collect();
        let mut a = honeywell();
        let t0 = Instant::now();
        let mut out = Vec::new();
        a.push(&report(&code, true), t0, &mut out);
        assert!(out.is_empty(), "held, not delivered: {out:?}");
        assert_eq!(a.deadline(), Some(t0 + DEFAULT_CONTINUED_TIMEOUT));
        assert_eq!(a.poll(t0 + 49 * MS), None);
        assert_eq!(a.poll(t0 + 50 * MS), Some(qr(&code)));
        // Idle again: no deadline, nothing more.
        assert_eq!(a.deadline(), None);
        assert_eq!(a.poll(t0 + 60 * MS), None);
    }

    #[test]
    fn a_112_byte_code_of_two_full_reports_is_delivered_after_the_gap() {
        let code: Vec<u8> = (0..112).map(|i| b'A' + (i % 26) as u8).collect();
        let mut a = honeywell();
        let t0 = Instant::now();
        let mut out = Vec::new();
        a.push(&report(&code[..56], true), t0, &mut out);
        a.push(&report(&code[56..], true), t0 + MS, &mut out);
        assert!(out.is_empty());
        // The gap counts from the last report.
        assert_eq!(a.deadline(), Some(t0 + MS + DEFAULT_CONTINUED_TIMEOUT));
        assert_eq!(a.poll(t0 + 50 * MS), None);
        assert_eq!(a.poll(t0 + 51 * MS), Some(qr(&code)));
    }

    #[test]
    fn a_continuation_within_the_gap_is_still_joined() {
        let code: Vec<u8> = (0..60).map(|i| b'a' + (i % 26) as u8).collect();
        let mut a = honeywell();
        let t0 = Instant::now();
        let mut out = Vec::new();
        a.push(&report(&code[..56], true), t0, &mut out);
        // The caller's timer is not due yet: nothing delivered early.
        assert_eq!(a.poll(t0 + 8 * MS), None);
        a.push(&report(&code[56..], false), t0 + 8 * MS, &mut out);
        assert_eq!(out, vec![qr(&code)]);
        assert_eq!(a.deadline(), None);
        // Also at the last moment before the gap ends.
        let mut a = honeywell();
        let mut out = Vec::new();
        a.push(&report(&code[..56], true), t0, &mut out);
        assert_eq!(a.poll(t0 + 49 * MS), None);
        a.push(&report(&code[56..], false), t0 + 49 * MS, &mut out);
        assert_eq!(out, vec![qr(&code)]);
    }

    #[test]
    fn a_new_scan_after_the_gap_is_not_joined_to_the_held_one() {
        let first = [b'1'; 56];
        let second: Vec<u8> = (0..60).map(|i| b'A' + (i % 26) as u8).collect();
        let mut a = honeywell();
        let t0 = Instant::now();
        let mut out = Vec::new();
        a.push(&report(&first, true), t0, &mut out);
        let due = a.deadline().unwrap();
        out.extend(a.poll(due));
        // A person's next scan, 300 ms later.
        let t1 = t0 + 300 * MS;
        a.push(&report(&second[..56], true), t1, &mut out);
        a.push(&report(&second[56..], false), t1 + MS, &mut out);
        assert_eq!(out, vec![qr(&first), qr(&second)]);
    }

    #[test]
    fn the_quiet_gap_is_configurable_and_only_a_full_chunk_is_held() {
        let l = PosLayout::from_descriptor(&honeywell_desc()).unwrap();
        let mut a = PosAssembler::new(l, 4096, Duration::from_millis(500))
            .with_continued_timeout(Duration::from_millis(80));
        let t0 = Instant::now();
        let mut out = Vec::new();
        a.push(&report(&[b'9'; 56], true), t0, &mut out);
        assert_eq!(a.deadline(), Some(t0 + 80 * MS));
        assert_eq!(a.poll(t0 + 79 * MS), None);
        assert_eq!(a.poll(t0 + 80 * MS), Some(qr(&[b'9'; 56])));
        // Continued on a short chunk is a scan still in progress, as before:
        // no deadline, and it goes stale only when a late report comes.
        a.push(&report(b"SHORT", true), t0, &mut out);
        assert_eq!(a.deadline(), None);
        assert_eq!(a.poll(t0 + Duration::from_secs(9)), None);
    }

    #[test]
    fn a_held_scan_over_max_frame_is_reported_too_long_at_the_deadline() {
        let l = PosLayout::from_descriptor(&honeywell_desc()).unwrap();
        let mut a = PosAssembler::new(l, 100, Duration::from_millis(500));
        let t0 = Instant::now();
        let mut out = Vec::new();
        a.push(&report(&[b'7'; 56], true), t0, &mut out);
        a.push(&report(&[b'7'; 56], true), t0 + MS, &mut out);
        assert!(out.is_empty());
        assert_eq!(
            a.poll(t0 + MS + DEFAULT_CONTINUED_TIMEOUT),
            Some(PosEvent::TooLong { len: 112 })
        );
        assert_eq!(a.deadline(), None);
    }

    #[test]
    fn an_aim_prefix_alone_is_not_a_scan() {
        // Fuzz finding: no symbology bytes, data `]Q1` only.
        let desc = [
            0x05, 0x8c, 0x75, 0x08, 0x95, 0x08, 0x09, 0xfe, 0x82, 0x02, 0x01,
        ];
        let l = PosLayout::from_descriptor(&desc).unwrap();
        assert!(assemble(l.clone(), 4096, &[b"]Q1\0\0\0\0\0"]).is_empty());
        assert_eq!(
            assemble(l, 4096, &[b"]Q1A\0\0\0\0"]),
            vec![PosEvent::Scan {
                data: b"A".to_vec(),
                symbology: Some(Symbology {
                    code: b'Q',
                    modifier: b'1'
                })
            }]
        );
    }

    #[test]
    fn other_reports_and_short_reports_are_harmless() {
        let l = PosLayout::from_descriptor(&honeywell_desc()).unwrap();
        let out = assemble(l, 4096, &[&[0x04, 0xff], &[0x02, 0x30, b']'], &[], &[0x02]]);
        assert!(out.is_empty());
    }

    #[test]
    fn descriptors_without_decoded_data_are_refused() {
        assert_eq!(
            PosLayout::from_descriptor(&[0x05, 0x01, 0x09, 0x06, 0xa1, 0x01, 0xc0]),
            Err(LayoutError::NoDecodedData)
        );
        // Decoded Data that starts mid-byte.
        assert!(matches!(
            PosLayout::from_descriptor(&[
                0x05, 0x8c, 0x75, 0x01, 0x95, 0x01, 0x81, 0x03, 0x75, 0x08, 0x09, 0xfe, 0x81, 0x02
            ]),
            Err(LayoutError::Unaligned { .. })
        ));
    }
}
