//! A HID report descriptor walker: short items in, report fields out.
//!
//! Scanners of different vendors lay out the same data differently (with or
//! without a Byte Count, with or without vendor bytes), so the HID-POS and
//! keyboard decoders never use fixed offsets: they ask this walker where a
//! usage lives. It implements the parts of HID 1.11 §6.2.2 that place
//! fields: global items (usage page, report size/count/id, push/pop), local
//! items (usage, usage minimum/maximum, with 4-byte extended usages) and the
//! Input/Output/Feature main items. Long items are skipped.
//!
//! Bounded: a descriptor longer than [`MAX_DESCRIPTOR`], more than
//! [`MAX_FIELDS`] fields or a report larger than [`MAX_REPORT_BYTES`] is an
//! error, so a hostile device cannot make us allocate without limit.

/// Longest report descriptor accepted (the kernel's HID_MAX_DESCRIPTOR_SIZE).
pub const MAX_DESCRIPTOR: usize = 4096;
/// Most main-item fields kept from one descriptor.
pub const MAX_FIELDS: usize = 1024;
/// Largest report accepted, in bytes (without the report ID).
pub const MAX_REPORT_BYTES: usize = 4096;
/// Deepest Push stack accepted.
const MAX_PUSH: usize = 16;
/// Most usages remembered for one main item (ranges are clipped to this).
const MAX_USAGES: usize = 256;

/// The three kinds of report (HID 1.11 §5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportKind {
    /// Device to host.
    Input,
    /// Host to device.
    Output,
    /// Both ways, on the control pipe.
    Feature,
}

/// One main item: `count` elements of `bit_size` bits at `bit_offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Input, Output or Feature.
    pub kind: ReportKind,
    /// Report ID, 0 when the descriptor uses none.
    pub report_id: u8,
    /// Offset from the start of the report data (after the ID byte), in bits.
    pub bit_offset: usize,
    /// Size of one element, in bits.
    pub bit_size: usize,
    /// Number of elements.
    pub count: usize,
    /// Extended usages (`page << 16 | id`) of the elements; the last one
    /// repeats for the remaining elements (HID 1.11 §6.2.2.8). Empty for padding.
    pub usages: Vec<u32>,
    /// The main item's data bits (bit 0 Constant, bit 1 Variable, bit 8 Buffered Bytes).
    pub flags: u32,
}

impl Field {
    /// True for padding and other constant fields.
    pub fn is_constant(&self) -> bool {
        self.flags & 1 != 0
    }

    /// The usage of element `i`.
    pub fn usage_of(&self, i: usize) -> Option<u32> {
        self.usages
            .get(i.min(self.usages.len().saturating_sub(1)))
            .copied()
    }

    /// Index of the first element whose usage is `usage`.
    pub fn element_with(&self, usage: u32) -> Option<usize> {
        // Elements past the list repeat the last usage, which is in the list.
        self.usages
            .iter()
            .position(|&u| u == usage)
            .filter(|&i| i < self.count)
    }

    /// Size of the whole field in bits.
    pub fn total_bits(&self) -> usize {
        self.bit_size * self.count
    }
}

/// A parsed report descriptor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Descriptor {
    /// Every main item, in descriptor order.
    pub fields: Vec<Field>,
    /// The application collections' usages, outermost first.
    pub applications: Vec<u32>,
    /// True when any Report ID item appeared (reports then start with the ID byte).
    pub uses_report_ids: bool,
}

/// Why a report descriptor cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescriptorError {
    /// Longer than [`MAX_DESCRIPTOR`].
    #[error("report descriptor of {0} bytes is longer than {MAX_DESCRIPTOR}")]
    TooLong(usize),
    /// An item's data runs past the end.
    #[error("item at offset {0} is cut off")]
    Truncated(usize),
    /// Push/Pop out of balance or too deep.
    #[error("unbalanced Push/Pop at offset {0}")]
    PushPop(usize),
    /// Report ID 0 is reserved.
    #[error("report ID 0 at offset {0}")]
    ReportIdZero(usize),
    /// More than [`MAX_FIELDS`] fields, or a report over [`MAX_REPORT_BYTES`].
    #[error("descriptor declares more data than allowed")]
    TooBig,
}

#[derive(Debug, Clone, Copy, Default)]
struct Globals {
    usage_page: u16,
    report_size: u32,
    report_count: u32,
    report_id: u8,
}

/// Walks `desc` into its fields.
pub fn parse(desc: &[u8]) -> Result<Descriptor, DescriptorError> {
    if desc.len() > MAX_DESCRIPTOR {
        return Err(DescriptorError::TooLong(desc.len()));
    }
    let mut out = Descriptor::default();
    let mut g = Globals::default();
    let mut stack: Vec<Globals> = Vec::new();
    let mut usages: Vec<u32> = Vec::new();
    let mut usage_min: Option<u32> = None;
    // Bit offsets per (kind, report id).
    let mut offsets: Vec<((ReportKind, u8), usize)> = Vec::new();
    let mut i = 0usize;
    while i < desc.len() {
        let prefix = desc[i];
        if prefix == 0xFE {
            // Long item: FE, size, tag, data.
            let size = *desc.get(i + 1).ok_or(DescriptorError::Truncated(i))? as usize;
            i = i
                .checked_add(3 + size)
                .filter(|&e| e <= desc.len())
                .ok_or(DescriptorError::Truncated(i))?;
            continue;
        }
        let size = match prefix & 0x03 {
            3 => 4,
            n => n as usize,
        };
        let data = desc
            .get(i + 1..i + 1 + size)
            .ok_or(DescriptorError::Truncated(i))?;
        let mut u = 0u32;
        for (k, b) in data.iter().enumerate() {
            u |= (*b as u32) << (8 * k);
        }
        let at = i;
        i += 1 + size;
        let tag = prefix & 0xFC;
        match tag {
            // Main items.
            0x80 | 0x90 | 0xB0 => {
                let kind = match tag {
                    0x80 => ReportKind::Input,
                    0x90 => ReportKind::Output,
                    _ => ReportKind::Feature,
                };
                let bit_size = g.report_size as usize;
                let count = g.report_count as usize;
                let bits = bit_size.saturating_mul(count);
                let slot = match offsets.iter().position(|(k, _)| *k == (kind, g.report_id)) {
                    Some(p) => p,
                    None => {
                        offsets.push(((kind, g.report_id), 0));
                        offsets.len() - 1
                    }
                };
                let bit_offset = offsets[slot].1;
                let end = bit_offset.saturating_add(bits);
                if end > MAX_REPORT_BYTES * 8 || out.fields.len() >= MAX_FIELDS {
                    return Err(DescriptorError::TooBig);
                }
                offsets[slot].1 = end;
                let mut field_usages = std::mem::take(&mut usages);
                field_usages.truncate(MAX_USAGES);
                out.fields.push(Field {
                    kind,
                    report_id: g.report_id,
                    bit_offset,
                    bit_size,
                    count,
                    usages: field_usages,
                    flags: u,
                });
                usage_min = None;
            }
            // Collection.
            0xA0 => {
                if u == 1
                    && let Some(&first) = usages.first()
                {
                    out.applications.push(first);
                }
                usages.clear();
                usage_min = None;
            }
            // End Collection.
            0xC0 => {
                usages.clear();
                usage_min = None;
            }
            // Global items.
            0x04 => g.usage_page = u as u16,
            0x74 => g.report_size = u,
            0x84 => {
                if u == 0 || u > 255 {
                    return Err(DescriptorError::ReportIdZero(at));
                }
                g.report_id = u as u8;
                out.uses_report_ids = true;
            }
            0x94 => g.report_count = u,
            0xA4 => {
                if stack.len() >= MAX_PUSH {
                    return Err(DescriptorError::PushPop(at));
                }
                stack.push(g);
            }
            0xB4 => g = stack.pop().ok_or(DescriptorError::PushPop(at))?,
            // Local items.
            0x08 if usages.len() < MAX_USAGES => usages.push(extend(u, size, g.usage_page)),
            0x18 => usage_min = Some(extend(u, size, g.usage_page)),
            0x28 => {
                if let Some(min) = usage_min.take() {
                    let max = extend(u, size, g.usage_page);
                    let mut x = min;
                    while x <= max && usages.len() < MAX_USAGES {
                        usages.push(x);
                        x += 1;
                    }
                }
            }
            // Logical/physical extents, units, designators, strings,
            // delimiters: they do not move fields.
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(DescriptorError::PushPop(desc.len()));
    }
    Ok(out)
}

/// A 1- or 2-byte usage is on the current page; a 4-byte one carries its own.
fn extend(u: u32, size: usize, page: u16) -> u32 {
    if size == 4 {
        u
    } else {
        ((page as u32) << 16) | (u & 0xFFFF)
    }
}

impl Descriptor {
    /// Bytes in report `id` of `kind`, counting the ID byte when IDs are used.
    pub fn report_len(&self, kind: ReportKind, id: u8) -> usize {
        let bits = self
            .fields
            .iter()
            .filter(|f| f.kind == kind && f.report_id == id)
            .map(|f| f.bit_offset + f.total_bits())
            .max()
            .unwrap_or(0);
        bits.div_ceil(8) + usize::from(self.uses_report_ids)
    }

    /// The first field of `kind` carrying `usage`, and the element index.
    pub fn find(&self, kind: ReportKind, usage: u32) -> Option<(&Field, usize)> {
        self.fields
            .iter()
            .filter(|f| f.kind == kind && !f.is_constant())
            .find_map(|f| f.element_with(usage).map(|i| (f, i)))
    }

    /// The first field of `kind` in report `id` carrying `usage`.
    pub fn find_in(&self, kind: ReportKind, id: u8, usage: u32) -> Option<(&Field, usize)> {
        self.fields
            .iter()
            .filter(|f| f.kind == kind && f.report_id == id && !f.is_constant())
            .find_map(|f| f.element_with(usage).map(|i| (f, i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 57-byte HID-POS descriptor of scanners.md §6.3 (appendix).
    pub(crate) const POS57: [u8; 57] = [
        0x05, 0x8c, 0x09, 0x02, 0xa1, 0x01, 0x85, 0x02, 0x15, 0x00, 0x26, 0xff, 0x00, 0x75, 0x08,
        0x95, 0x01, 0x05, 0x01, 0x09, 0x3b, 0x81, 0x02, 0x95, 0x03, 0x05, 0x8c, 0x09, 0xfb, 0x09,
        0xfc, 0x09, 0xfd, 0x81, 0x02, 0x95, 0x38, 0x09, 0xfe, 0x82, 0x02, 0x01, 0x25, 0x01, 0x75,
        0x01, 0x95, 0x01, 0x09, 0xff, 0x81, 0x02, 0x75, 0x07, 0x81, 0x03, 0xc0,
    ];

    #[test]
    fn the_spec_descriptor_places_every_field() {
        let d = parse(&POS57).unwrap();
        assert!(d.uses_report_ids);
        assert_eq!(d.applications, vec![0x008C_0002]);
        let (bc, _) = d.find(ReportKind::Input, 0x0001_003B).unwrap();
        assert_eq!((bc.report_id, bc.bit_offset, bc.bit_size), (2, 0, 8));
        let (sym, i) = d.find(ReportKind::Input, 0x008C_00FC).unwrap();
        assert_eq!((sym.bit_offset, i, sym.count), (8, 1, 3));
        let (data, _) = d.find(ReportKind::Input, 0x008C_00FE).unwrap();
        assert_eq!((data.bit_offset, data.count, data.flags), (32, 56, 0x102));
        let (cont, _) = d.find(ReportKind::Input, 0x008C_00FF).unwrap();
        assert_eq!((cont.bit_offset, cont.bit_size), (480, 1));
        // 61 data bytes plus the ID byte: the 62-byte hidraw read of §6.3.
        assert_eq!(d.report_len(ReportKind::Input, 2), 62);
    }

    #[test]
    fn usage_ranges_and_the_boot_keyboard() {
        // HID 1.11 Appendix B.1 (the lab's kbd_desc.bin).
        let kbd: [u8; 63] = [
            0x05, 0x01, 0x09, 0x06, 0xa1, 0x01, 0x05, 0x07, 0x19, 0xe0, 0x29, 0xe7, 0x15, 0x00,
            0x25, 0x01, 0x75, 0x01, 0x95, 0x08, 0x81, 0x02, 0x95, 0x01, 0x75, 0x08, 0x81, 0x03,
            0x95, 0x05, 0x75, 0x01, 0x05, 0x08, 0x19, 0x01, 0x29, 0x05, 0x91, 0x02, 0x95, 0x01,
            0x75, 0x03, 0x91, 0x03, 0x95, 0x06, 0x75, 0x08, 0x15, 0x00, 0x25, 0x65, 0x05, 0x07,
            0x19, 0x00, 0x29, 0x65, 0x81, 0x00, 0xc0,
        ];
        let d = parse(&kbd).unwrap();
        assert!(!d.uses_report_ids);
        assert_eq!(d.applications, vec![0x0001_0006]);
        let (m, i) = d.find(ReportKind::Input, 0x0007_00E2).unwrap();
        assert_eq!((m.bit_offset, i), (0, 2)); // Left Alt is modifier bit 2
        assert_eq!(d.report_len(ReportKind::Input, 0), 8);
        let (led, i) = d.find(ReportKind::Output, 0x0008_0002).unwrap();
        assert_eq!((led.bit_offset, i), (0, 1)); // Caps Lock LED
        assert_eq!(d.report_len(ReportKind::Output, 0), 1);
    }

    #[test]
    fn bad_descriptors_are_refused_not_panicked_on() {
        assert_eq!(parse(&[0x05]), Err(DescriptorError::Truncated(0)));
        assert_eq!(parse(&[0x85, 0x00]), Err(DescriptorError::ReportIdZero(0)));
        assert_eq!(parse(&[0xb4]), Err(DescriptorError::PushPop(0)));
        assert_eq!(parse(&[0xa4]), Err(DescriptorError::PushPop(1)));
        assert_eq!(
            parse(&[0xfe, 0x10, 0x00]),
            Err(DescriptorError::Truncated(0))
        );
        // 65535 × 65535 bits: refused, nothing allocated.
        assert_eq!(
            parse(&[0x76, 0xff, 0xff, 0x96, 0xff, 0xff, 0x81, 0x02]),
            Err(DescriptorError::TooBig)
        );
        assert!(matches!(
            parse(&[0u8; 5000]),
            Err(DescriptorError::TooLong(5000))
        ));
        // A huge usage range is clipped.
        let d = parse(&[
            0x05, 0x07, 0x19, 0x00, 0x2a, 0xff, 0xff, 0x75, 0x08, 0x95, 0x01, 0x81, 0x00,
        ])
        .unwrap();
        assert_eq!(d.fields[0].usages.len(), 256);
    }

    #[test]
    fn push_pop_restores_globals() {
        // Push, change report size, Pop: the next field uses the old size.
        let d = parse(&[
            0x05, 0x8c, 0x75, 0x08, 0x95, 0x01, 0xa4, 0x75, 0x01, 0x09, 0xff, 0x81, 0x02, 0xb4,
            0x09, 0xfe, 0x81, 0x02,
        ])
        .unwrap();
        assert_eq!(d.fields[0].bit_size, 1);
        assert_eq!((d.fields[1].bit_size, d.fields[1].bit_offset), (8, 1));
    }
}
