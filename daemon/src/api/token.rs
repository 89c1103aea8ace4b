//! The HTTP API token file (`api.token_file`).
//!
//! The token is what keeps other local programs and web pages from driving
//! payments through the loopback HTTP API, so its file must be readable only
//! by the daemon and its group. When the file is missing, the daemon creates
//! it with a random token (256 bits, hex), mode 0640 and the group of
//! `api.socket_group`, and logs the path (never the token). When it cannot
//! create it (e.g. systemd's `ProtectSystem=strict` makes `/etc` read-only),
//! it refuses to start and says how to create it: the unit runs
//! `ybposd --init-token` as root before the daemon starts for this reason.
//! An existing file that others may read or write is refused.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::rand::SecureRandom;
use tracing::{info, warn};

/// Shortest token accepted from a file.
pub const MIN_LEN: usize = 16;
/// Longest token accepted from a file.
pub const MAX_LEN: usize = 256;

/// The token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// Reading failed.
    #[error("cannot read the API token file {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause (named so it is printed once, in the message).
        cause: std::io::Error,
    },
    /// It was missing and could not be created.
    #[error(
        "the API token file {path} does not exist and cannot be created ({cause}); create it \
         as root with `ybposd --config FILE --init-token`, or disable HTTP with api.http_listen = \"\""
    )]
    Create {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// Others may read or write it.
    #[error(
        "the API token file {path} is accessible to other users (mode {mode:03o}); run: chmod o-rwx {path}"
    )]
    Mode {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Its content is not a usable token.
    #[error("the API token file {path} {why}")]
    Content {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// Reads the token, creating the file first when it is missing. Returns the
/// token and whether the file was created now.
pub fn load_or_create(path: &Path, group: Option<&str>) -> Result<(String, bool), TokenFileError> {
    match std::fs::metadata(path) {
        Ok(_) => load(path).map(|t| (t, false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match create(path, group) {
            Ok(t) => Ok((t, true)),
            // Someone else created it meanwhile: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                load(path).map(|t| (t, false))
            }
            Err(cause) => Err(TokenFileError::Create {
                path: path.to_path_buf(),
                cause,
            }),
        },
        Err(cause) => Err(TokenFileError::Read {
            path: path.to_path_buf(),
            cause,
        }),
    }
}

/// Reads and checks an existing token file.
pub fn load(path: &Path) -> Result<String, TokenFileError> {
    let read_err = |cause| TokenFileError::Read {
        path: path.to_path_buf(),
        cause,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(TokenFileError::Mode {
            path: path.to_path_buf(),
            mode,
        });
    }
    let bad = |why: String| TokenFileError::Content {
        path: path.to_path_buf(),
        why,
    };
    if !meta.is_file() {
        return Err(bad("is not a regular file".into()));
    }
    if meta.len() > 4096 {
        return Err(bad("is too large for a token".into()));
    }
    let text = std::fs::read(path).map_err(read_err)?;
    let text = String::from_utf8(text).map_err(|_| bad("is not text".into()))?;
    let token = text.trim();
    check(token).map_err(|w| bad(w.into()))?;
    Ok(token.to_string())
}

/// A token must be 16–256 characters that need no escaping in a URL.
fn check(token: &str) -> Result<(), &'static str> {
    if token.len() < MIN_LEN {
        return Err("holds a token shorter than 16 characters");
    }
    if token.len() > MAX_LEN {
        return Err("holds a token longer than 256 characters");
    }
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
    {
        return Err("holds characters other than A-Z a-z 0-9 . _ ~ - (it must fit in a URL as is)");
    }
    Ok(())
}

/// Creates the file with a fresh random token (fails if it exists).
fn create(path: &Path, group: Option<&str>) -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| std::io::Error::other("no system randomness"))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(path)?;
    // The umask may have narrowed the mode; the group must be able to read.
    f.set_permissions(std::fs::Permissions::from_mode(0o640))?;
    f.write_all(format!("{token}\n").as_bytes())?;
    f.sync_all()?;
    if let Some(group) = group {
        match nix::unistd::Group::from_name(group) {
            Ok(Some(g)) => {
                if let Err(e) = nix::unistd::fchown(f.as_raw_fd(), None, Some(g.gid)) {
                    warn!(group, error = %e, path = %path.display(), "Cannot give the API token file to api.socket_group.");
                }
            }
            Ok(None) => {
                warn!(
                    group,
                    "api.socket_group does not exist; the token file keeps the daemon's group."
                )
            }
            Err(e) => warn!(group, error = %e, "Cannot look up api.socket_group."),
        }
    }
    info!(
        path = %path.display(),
        "Created the API token file with a random token (mode 0640). Give it to the HIS/POS \
         software that uses the HTTP API; it is not logged."
    );
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_then_reads() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("api-token");
        let (t, created) = load_or_create(&p, None).unwrap();
        assert!(created);
        assert_eq!(t.len(), 64);
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let (t2, created) = load_or_create(&p, None).unwrap();
        assert!(!created);
        assert_eq!(t, t2);
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tok");
        std::fs::write(&p, "0123456789abcdef0123\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_or_create(&p, None).unwrap_err();
        assert!(matches!(e, TokenFileError::Mode { mode: 0o644, .. }), "{e}");
        assert!(e.to_string().contains("chmod o-rwx"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load(&p).unwrap(), "0123456789abcdef0123");
        for (text, why) in [
            ("short\n", "shorter"),
            ("", "shorter"),
            ("abc+def/ghi=jkl0123456789", "characters"),
            ("0123456789abcdef 0123456789", "characters"),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = load(&p).unwrap_err();
            assert!(e.to_string().contains(why), "{text:?}: {e}");
        }
        std::fs::write(&p, "a".repeat(300)).unwrap();
        assert!(load(&p).unwrap_err().to_string().contains("longer"));
        std::fs::write(&p, [0xffu8; 20]).unwrap();
        assert!(load(&p).unwrap_err().to_string().contains("not text"));
    }

    #[test]
    fn an_uncreatable_file_says_how_to_create_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no/such/folder/api-token");
        let e = load_or_create(&p, None).unwrap_err();
        assert!(matches!(e, TokenFileError::Create { .. }));
        assert!(e.to_string().contains("--init-token"), "{e}");
    }
}
