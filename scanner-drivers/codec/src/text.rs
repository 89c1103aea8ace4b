//! Scan bytes to text.
//!
//! Most codes are ASCII; Chinese scanners may send UTF-8 or GB18030/GBK for
//! text codes. Anything that is neither, or that carries control bytes a code
//! never contains, is garbage (line noise, a wrong baud rate) and is refused
//! so the caller can drop it with a log line.

/// Why a frame is not a scan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Nothing left after removing the prefix and suffix.
    #[error("empty frame")]
    Empty,
    /// Neither UTF-8 nor GB18030.
    #[error("{len} bytes that are neither UTF-8 nor GB18030")]
    NotText {
        /// Frame length.
        len: usize,
    },
    /// A control byte that no barcode carries (NUL, BEL, ESC …).
    #[error("control byte 0x{byte:02x} at offset {offset}")]
    ControlByte {
        /// The offending byte.
        byte: u8,
        /// Where it is.
        offset: usize,
    },
}

/// Control bytes a code may legitimately carry: Tab, EOT, GS (FNC1/GS1
/// separator), RS (ISO 15434 record separator).
fn allowed_control(b: u8) -> bool {
    matches!(b, b'\t' | 0x04 | 0x1d | 0x1e)
}

/// Decodes a frame's bytes into text.
pub fn decode(bytes: &[u8]) -> Result<String, TextError> {
    if bytes.is_empty() {
        return Err(TextError::Empty);
    }
    if let Some(offset) = bytes
        .iter()
        .position(|&b| (b < 0x20 && !allowed_control(b)) || b == 0x7f)
    {
        return Err(TextError::ControlByte {
            byte: bytes[offset],
            offset,
        });
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Ok(s.to_string());
    }
    encoding_rs::GB18030
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|s| s.into_owned())
        .ok_or(TextError::NotText { len: bytes.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_and_utf8_pass() {
        assert_eq!(
            decode(b"4243754826492874240001130000").unwrap(),
            "4243754826492874240001130000"
        );
        assert_eq!(decode("笔记本".as_bytes()).unwrap(), "笔记本");
    }

    #[test]
    fn gbk_is_decoded() {
        // 笔记本 in GBK.
        assert_eq!(
            decode(&[0xb1, 0xca, 0xbc, 0xc7, 0xb1, 0xbe]).unwrap(),
            "笔记本"
        );
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(decode(b""), Err(TextError::Empty));
        assert!(matches!(
            decode(b"AB\x00CD"),
            Err(TextError::ControlByte { byte: 0, offset: 2 })
        ));
        assert!(matches!(
            decode(&[0xff, 0xff, 0xff]),
            Err(TextError::NotText { .. })
        ));
    }

    #[test]
    fn gs1_separators_are_kept() {
        assert_eq!(decode(b"01095\x1d10ABC").unwrap(), "01095\u{1d}10ABC");
    }
}
