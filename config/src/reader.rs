//! A key-by-key reader over a parsed TOML table that collects every problem.
//!
//! serde's `deny_unknown_fields` stops at the first error and does not always
//! name the key; installers need all of them at once, each naming its key.
//! This reader takes values out of a table one key at a time, records a
//! [`ConfigError`] for every wrong type or range, and at the end reports every
//! key nobody asked for.

use std::collections::BTreeSet;
use std::path::Path;

use toml::{Table, Value};

use crate::ConfigError;

/// Collects errors for one file; shared by every section reader.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    pub(crate) errors: Vec<ConfigError>,
}

impl Problems {
    pub(crate) fn push(&mut self, file: &Path, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: file.to_path_buf(),
            key: key.into(),
            message: message.into(),
        });
    }
}

/// Reads the keys of one TOML table (a section) and remembers which were used.
#[derive(Debug)]
pub(crate) struct Section<'a> {
    file: &'a Path,
    prefix: String,
    table: Option<&'a Table>,
    used: BTreeSet<String>,
}

impl<'a> Section<'a> {
    /// A section named `prefix`; `table` is `None` when the section is absent.
    pub(crate) fn new(file: &'a Path, prefix: impl Into<String>, table: Option<&'a Table>) -> Self {
        Section {
            file,
            prefix: prefix.into(),
            table,
            used: BTreeSet::new(),
        }
    }

    /// The full dotted key, e.g. `gateway.url`.
    pub(crate) fn key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{}", self.prefix, key)
        }
    }

    /// The file this section came from.
    pub(crate) fn file(&self) -> &'a Path {
        self.file
    }

    /// Marks a key as read by someone else (e.g. `[[scanner]]` arrays).
    pub(crate) fn mark_used(&mut self, key: &str) {
        self.used.insert(key.to_string());
    }

    fn raw(&mut self, key: &str) -> Option<&'a Value> {
        self.used.insert(key.to_string());
        self.table.and_then(|t| t.get(key))
    }

    fn wrong_type(&self, p: &mut Problems, key: &str, want: &str, got: &Value) {
        p.push(
            self.file,
            self.key(key),
            format!("expected {want}, found {}", got.type_str()),
        );
    }

    /// An optional string.
    pub(crate) fn opt_str(&mut self, p: &mut Problems, key: &str) -> Option<String> {
        match self.raw(key)? {
            Value::String(s) => Some(s.clone()),
            other => {
                self.wrong_type(p, key, "a string", other);
                None
            }
        }
    }

    /// A string with a default.
    pub(crate) fn str_or(&mut self, p: &mut Problems, key: &str, default: &str) -> String {
        self.opt_str(p, key).unwrap_or_else(|| default.to_string())
    }

    /// A required string; records "missing" when absent.
    pub(crate) fn req_str(&mut self, p: &mut Problems, key: &str) -> Option<String> {
        let present = self.table.is_some_and(|t| t.contains_key(key));
        let v = self.opt_str(p, key);
        if !present {
            p.push(self.file, self.key(key), "is required but missing");
        }
        v
    }

    /// An optional non-negative integer within `range`.
    pub(crate) fn opt_u64(
        &mut self,
        p: &mut Problems,
        key: &str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Option<u64> {
        match self.raw(key)? {
            Value::Integer(i) => {
                let ok = u64::try_from(*i).ok().filter(|v| range.contains(v));
                if ok.is_none() {
                    p.push(
                        self.file,
                        self.key(key),
                        format!("{i} is out of range ({}..={})", range.start(), range.end()),
                    );
                }
                ok
            }
            other => {
                self.wrong_type(p, key, "an integer", other);
                None
            }
        }
    }

    /// An integer with a default.
    pub(crate) fn u64_or(
        &mut self,
        p: &mut Problems,
        key: &str,
        range: std::ops::RangeInclusive<u64>,
        default: u64,
    ) -> u64 {
        self.opt_u64(p, key, range).unwrap_or(default)
    }

    /// A boolean with a default.
    pub(crate) fn bool_or(&mut self, p: &mut Problems, key: &str, default: bool) -> bool {
        match self.raw(key) {
            None => default,
            Some(Value::Boolean(b)) => *b,
            Some(other) => {
                self.wrong_type(p, key, "true or false", other);
                default
            }
        }
    }

    /// A list of strings (absent = empty).
    pub(crate) fn str_list(&mut self, p: &mut Problems, key: &str) -> Vec<String> {
        match self.raw(key) {
            None => Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        other => p.push(
                            self.file,
                            format!("{}[{i}]", self.key(key)),
                            format!("expected a string, found {}", other.type_str()),
                        ),
                    }
                }
                out
            }
            Some(other) => {
                self.wrong_type(p, key, "a list of strings", other);
                Vec::new()
            }
        }
    }

    /// A list of integers (absent = empty).
    pub(crate) fn u32_list(&mut self, p: &mut Problems, key: &str) -> Vec<u32> {
        match self.raw(key) {
            None => Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item.as_integer().and_then(|v| u32::try_from(v).ok()) {
                        Some(v) => out.push(v),
                        None => p.push(
                            self.file,
                            format!("{}[{i}]", self.key(key)),
                            "expected a non-negative integer",
                        ),
                    }
                }
                out
            }
            Some(other) => {
                self.wrong_type(p, key, "a list of integers", other);
                Vec::new()
            }
        }
    }

    /// A nested table (e.g. `[gateway.paths]`).
    pub(crate) fn table(&mut self, p: &mut Problems, key: &str) -> Option<&'a Table> {
        match self.raw(key)? {
            Value::Table(t) => Some(t),
            other => {
                self.wrong_type(p, key, "a table", other);
                None
            }
        }
    }

    /// Records every key of the table that no reader asked for.
    pub(crate) fn finish(self, p: &mut Problems) {
        if let Some(t) = self.table {
            for k in t.keys() {
                if !self.used.contains(k) {
                    p.push(self.file, self.key(k), "unknown key");
                }
            }
        }
    }
}
