//! AIM symbology identifiers (ISO/IEC 15424): `]` + code character + modifier.
//!
//! Scanners configured to send the identifier put it in front of the data
//! (`]Q1` = QR Code model 2). We parse it into [`Symbology`] and strip it, so
//! the text the gateway sees is exactly the code's content.

/// A parsed AIM identifier, e.g. `]Q1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Symbology {
    /// Code character: `Q` QR, `d` Data Matrix, `E` EAN/UPC, `C` Code 128 …
    pub code: u8,
    /// Modifier character, e.g. `1` for QR model 2 without ECI.
    pub modifier: u8,
}

impl Symbology {
    /// The three-character form, `]Q1`.
    pub fn as_aim(&self) -> String {
        format!("]{}{}", self.code as char, self.modifier as char)
    }

    /// A short human name of the symbology for logs and the API.
    pub fn name(&self) -> &'static str {
        match self.code {
            b'Q' => "qr",
            b'd' => "datamatrix",
            b'z' => "aztec",
            b'L' => "pdf417",
            b'E' => "ean-upc",
            b'C' => "code128",
            b'A' => "code39",
            b'I' => "itf",
            b'e' => "gs1-databar",
            b'X' => "other",
            _ => "unknown",
        }
    }
}

impl std::fmt::Display for Symbology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_aim())
    }
}

/// Splits a leading AIM identifier off `data`, if there is one.
///
/// The identifier is `]`, an ASCII letter, then an ASCII letter or digit.
pub fn split(data: &[u8]) -> (Option<Symbology>, &[u8]) {
    match data {
        [b']', code, modifier, rest @ ..]
            if code.is_ascii_alphabetic() && modifier.is_ascii_alphanumeric() =>
        {
            (
                Some(Symbology {
                    code: *code,
                    modifier: *modifier,
                }),
                rest,
            )
        }
        _ => (None, data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_model_2_is_parsed_and_stripped() {
        let (s, rest) = split(b"]Q1HELLO");
        let s = s.unwrap();
        assert_eq!(s.as_aim(), "]Q1");
        assert_eq!(s.name(), "qr");
        assert_eq!(rest, b"HELLO");
    }

    #[test]
    fn no_identifier_leaves_data_alone() {
        assert_eq!(
            split(b"4243754826492874240001130000"),
            (None, &b"4243754826492874240001130000"[..])
        );
        assert_eq!(split(b"]"), (None, &b"]"[..]));
        assert_eq!(split(b"]Q"), (None, &b"]Q"[..]));
        assert_eq!(split(b"]1Q"), (None, &b"]1Q"[..]));
    }

    #[test]
    fn identifier_only_gives_empty_data() {
        let (s, rest) = split(b"]d2");
        assert_eq!(s.unwrap().name(), "datamatrix");
        assert!(rest.is_empty());
    }
}
