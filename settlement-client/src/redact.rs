//! Masking personal data for logs: ID numbers, names, ecTokens, QR text.
//!
//! Logs are read by support staff and shipped off the machine; a full ID
//! number, name, ecToken or code must never appear in them.

use std::fmt;

/// Keeps the first 4 and last 4 characters of long values
/// (`4201**********1234`), fewer of short ones, stars for the rest.
pub fn mask(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    let keep = match n {
        0..=4 => 0,
        5..=8 => 1,
        9..=15 => 2,
        _ => 4,
    };
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < keep || i >= n - keep { *c } else { '*' })
        .collect()
}

/// Keeps only the first character of a name (`张*`).
pub fn mask_name(s: &str) -> String {
    let mut it = s.chars();
    match it.next() {
        Some(first) => std::iter::once(first).chain(it.map(|_| '*')).collect(),
        None => String::new(),
    }
}

/// A value that prints masked: `tracing::info!(code = %Masked(&text))`.
#[derive(Clone, Copy)]
pub struct Masked<'a>(pub &'a str);

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask(self.0))
    }
}

impl fmt::Debug for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", mask(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_like_the_guide_says() {
        assert_eq!(mask("420102198001011234"), "4201**********1234");
        assert_eq!(
            mask("4243754826492874240001130000"),
            "4243********************0000"
        );
        assert_eq!(mask("abc"), "***");
        assert_eq!(mask("abcdef"), "a****f");
        assert_eq!(mask_name("张三丰"), "张**");
        assert_eq!(
            format!("{}", Masked("420102198001011234")),
            "4201**********1234"
        );
    }
}
