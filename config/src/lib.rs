//! Typed configuration of `ybposd`: one TOML file (spec `config.md`).
//!
//! - [`load`] reads a file, [`from_toml`] parses text; both return a
//!   validated [`Config`] or **every** problem found ([`ConfigErrors`]), each
//!   naming the file and the dotted key, so `ybposd --check-config` can print
//!   them all at once.
//! - Unknown keys are errors: a typo must not pass silently.
//! - Relative paths are resolved against the config file's folder.
//!
//! Modules: [`model`] (the validated types), `parse` (table → types),
//! `reader` (the key-by-key reader that collects problems).

mod model;
mod parse;
mod reader;

use std::fmt;
use std::path::{Path, PathBuf};

pub use model::*;
pub use parse::{
    CONTINUED_TIMEOUT_RANGE_MS, DEFAULT_CONTINUED_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS,
    DEFAULT_MAX_FRAME, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_SESSION_TTL_MS,
};

/// Where the daemon looks when no `--config` is given.
pub const DEFAULT_PATH: &str = "/etc/ybpos/ybpos.toml";

/// Exit code for a bad configuration (`EX_CONFIG`), so systemd does not
/// restart-loop on it (`RestartPreventExitStatus=78`).
pub const EXIT_CONFIG: i32 = 78;

/// One problem in a config file, naming the file and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {key}: {message}", file.display())]
pub struct ConfigError {
    /// The file the problem is in.
    pub file: PathBuf,
    /// Dotted key, e.g. `gateway.url` or `scanner[1].baud` (empty for the file itself).
    pub key: String,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

/// Every problem found in one file; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    let text = std::fs::read_to_string(&abs).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: abs.clone(),
            key: String::new(),
            message: format!("cannot read: {e}"),
        }])
    })?;
    from_toml(&text, &abs)
}

/// Parses and validates config text; `file` names it in errors and anchors
/// relative paths.
pub fn from_toml(text: &str, file: &Path) -> Result<Config, ConfigErrors> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let mut message = e.message().to_string();
        if let Some(span) = e.span() {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            message = format!("line {line}: {message}");
        }
        ConfigErrors(vec![ConfigError {
            file: file.to_path_buf(),
            key: String::new(),
            message: format!("not valid TOML: {message}"),
        }])
    })?;
    let mut problems = reader::Problems::default();
    let cfg = parse::config(file, &table, &mut problems);
    match cfg {
        Some(cfg) if problems.errors.is_empty() => Ok(cfg),
        _ => {
            if problems.errors.is_empty() {
                problems.push(file, "", "invalid configuration");
            }
            Err(ConfigErrors(problems.errors))
        }
    }
}

#[cfg(test)]
mod tests;
