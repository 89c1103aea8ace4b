//! USB HID: report descriptors, HID-POS scans and keyboard-wedge keystrokes.
//!
//! - [`descriptor`]: the report-descriptor walker (fields and usages).
//! - [`pos`]: HID-POS layout from the descriptor, multi-report reassembly,
//!   the trigger/beep output report.
//! - [`keyboard`]: boot keyboard reports to text (US layout, Shift only,
//!   Alt+numpad as Unicode, GBK or U.S. Windows reads it).

pub mod descriptor;
pub mod keyboard;
pub mod pos;

pub use descriptor::{Descriptor, DescriptorError, Field, ReportKind};
pub use keyboard::{AltMode, KeyboardDecoder};
pub use pos::{LayoutError, PosAssembler, PosEvent, PosLayout};
