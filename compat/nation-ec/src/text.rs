//! Text in and out: the caller's bytes (UTF-8 or GBK) to a `String`, and an
//! answer's JSON text to the caller's bytes.

use std::borrow::Cow;

use encoding_rs::{EncoderResult, GBK};

use crate::config::Encoding;
use crate::request::InputError;

/// The caller's input bytes as text; invalid bytes are an error, never
/// replaced (a name with a replacement character would be a wrong name).
/// A UTF-8 byte-order mark is skipped.
pub fn decode(bytes: &[u8], encoding: Encoding) -> Result<String, InputError> {
    match encoding {
        Encoding::Utf8 => {
            let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            std::str::from_utf8(bytes)
                .map(str::to_string)
                .map_err(|_| InputError::Encoding(Encoding::Utf8))
        }
        Encoding::Gbk => GBK
            .decode_without_bom_handling_and_without_replacement(bytes)
            .map(Cow::into_owned)
            .ok_or(InputError::Encoding(Encoding::Gbk)),
    }
}

/// JSON text in the caller's encoding. In GBK, a character GBK cannot hold
/// (rare characters of names, emoji) becomes a JSON `\uXXXX` escape, which
/// is valid wherever non-ASCII text can occur in JSON (inside strings), so
/// the caller's JSON parser restores it.
pub fn encode_json(json: String, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Utf8 => json.into_bytes(),
        Encoding::Gbk => encode_gbk_json(&json),
    }
}

fn encode_gbk_json(json: &str) -> Vec<u8> {
    let mut encoder = GBK.new_encoder();
    let mut out = Vec::with_capacity(json.len() + 16);
    let mut rest = json;
    loop {
        let room = encoder
            .max_buffer_length_from_utf8_without_replacement(rest.len())
            .unwrap_or(rest.len() * 4 + 16);
        let start = out.len();
        out.resize(start + room, 0);
        let (result, read, written) =
            encoder.encode_from_utf8_without_replacement(rest, &mut out[start..], true);
        out.truncate(start + written);
        rest = &rest[read..];
        match result {
            EncoderResult::InputEmpty => return out,
            EncoderResult::OutputFull => {}
            EncoderResult::Unmappable(c) => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.extend_from_slice(format!("\\u{u:04x}").as_bytes());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn utf8_in() {
        assert_eq!(decode("张三".as_bytes(), Encoding::Utf8).unwrap(), "张三");
        assert_eq!(
            decode(b"\xEF\xBB\xBF{}", Encoding::Utf8).unwrap(),
            "{}",
            "BOM skipped"
        );
        assert_eq!(
            decode(b"{\"a\":\"\xff\"}", Encoding::Utf8),
            Err(InputError::Encoding(Encoding::Utf8))
        );
        // GBK bytes are not UTF-8.
        assert!(decode(b"\xd5\xc5\xc8\xfd", Encoding::Utf8).is_err());
    }

    #[test]
    fn gbk_in() {
        assert_eq!(decode(b"\xd5\xc5\xc8\xfd", Encoding::Gbk).unwrap(), "张三");
        // A lead byte without its trail, and a bare 0x80 lead at the end.
        assert_eq!(
            decode(b"{\"a\":\"\x81\"}", Encoding::Gbk),
            Err(InputError::Encoding(Encoding::Gbk))
        );
        assert!(decode(b"\xd5", Encoding::Gbk).is_err());
        // A GBK trail byte may be 0x5C ('\\'): decoded before JSON sees it.
        let s = decode(b"\"\x81\x5c\"", Encoding::Gbk).unwrap();
        assert_eq!(s.chars().count(), 3);
    }

    #[test]
    fn gbk_out_round_trips_through_json_even_for_characters_gbk_lacks() {
        let v = json!({"userName": "张三", "rare": "𠀀龘😀€", "ascii": "a\"b"});
        let text = v.to_string();
        let bytes = encode_json(text, Encoding::Gbk);
        assert!(
            bytes.windows(4).any(|w| w == b"\xd5\xc5\xc8\xfd"),
            "张三 in GBK"
        );
        let back = GBK
            .decode_without_bom_handling_and_without_replacement(&bytes)
            .unwrap();
        assert!(back.contains("\\ud840\\udc00"), "𠀀 escaped: {back}");
        let parsed: Value = serde_json::from_str(&back).unwrap();
        assert_eq!(parsed, v);
    }

    #[test]
    fn utf8_out_is_the_text() {
        assert_eq!(
            encode_json("{\"a\":\"张\"}".into(), Encoding::Utf8),
            "{\"a\":\"张\"}".as_bytes()
        );
    }
}
