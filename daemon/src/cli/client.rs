//! A blocking JSON-RPC client on the Unix socket whose failures are plain
//! words with the next step ([`Trouble`]), for people and for monitoring.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

/// Why the CLI could not get an answer: each says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum Trouble {
    /// Nothing listens on the socket.
    #[error(
        "the daemon is not running (nothing answers on {0}): systemctl status ybposd \
         (or give the right socket with --socket / YBPOS_SOCKET)"
    )]
    NotRunning(PathBuf),
    /// The socket's permissions keep this user out.
    #[error(
        "this user may not use {0}: add it to group ybpos (sudo usermod -aG ybpos \"$USER\", \
         then log in again)"
    )]
    NoPermission(PathBuf),
    /// The daemon's uid allow-list keeps this user out.
    #[error(
        "ybposd refuses this user (uid {0}): add the uid to api.allowed_uids in \
         /etc/ybpos/ybpos.toml and restart ybposd, or run as a listed user"
    )]
    UidRefused(u32),
    /// Too many connections.
    #[error("ybposd is overloaded: try again in a moment")]
    Overloaded,
    /// The daemon went away mid-call.
    #[error(
        "the daemon stopped during the call: systemctl status ybposd; journalctl -u ybposd -n 50"
    )]
    Stopped,
    /// No answer in time.
    #[error("the daemon did not answer within {} s: systemctl status ybposd", .0.as_secs())]
    Silent(Duration),
    /// The daemon answered something that is not JSON-RPC.
    #[error("the daemon answered something unreadable ({0}): is --socket ybposd's API socket?")]
    Garbled(String),
    /// Another I/O problem with the socket.
    #[error("cannot talk to the daemon on {path}: {source}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// One connection to the daemon.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
}

impl Client {
    /// Connects to `path`.
    pub fn connect(path: &Path) -> Result<Client, Trouble> {
        let s = UnixStream::connect(path).map_err(|e| match e.kind() {
            ErrorKind::NotFound | ErrorKind::ConnectionRefused => {
                Trouble::NotRunning(path.to_path_buf())
            }
            ErrorKind::PermissionDenied => Trouble::NoPermission(path.to_path_buf()),
            _ => Trouble::Io {
                path: path.to_path_buf(),
                source: e,
            },
        })?;
        let reader = s.try_clone().map_err(|e| Trouble::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        Ok(Client {
            path: path.to_path_buf(),
            reader: BufReader::new(reader),
            writer: s,
            next_id: 1,
        })
    }

    /// How long a read may wait (`None`: for ever, as `watch` does).
    pub fn set_timeout(&mut self, t: Option<Duration>) {
        let _ = self.writer.set_read_timeout(t);
    }

    /// One call: `Ok(Ok(result))`, `Ok(Err(error object))`, or trouble.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Result<Value, Value>, Trouble> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line =
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        line.push('\n');
        if let Err(e) = self.writer.write_all(line.as_bytes()) {
            return Err(match e.kind() {
                // The daemon closed a refused connection before we wrote:
                // its refusal may still be waiting to be read.
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset => match self.read() {
                    Ok(m) => return Ok(Err(refusal(&m)?)),
                    Err(t) => t,
                },
                _ => self.io(e),
            });
        }
        loop {
            let m = self.read()?;
            if m.get("id") == Some(&json!(id)) {
                return Ok(match m.get("error") {
                    Some(e) => Err(e.clone()),
                    None => Ok(m.get("result").cloned().unwrap_or(Value::Null)),
                });
            }
            if m.get("id") == Some(&Value::Null) {
                // A refusal of the connection (uid, overload) has no id.
                return Ok(Err(refusal(&m)?));
            }
        }
    }

    /// The next message (answer or notification).
    pub fn read(&mut self) -> Result<Value, Trouble> {
        let mut buf = String::new();
        match self.reader.read_line(&mut buf) {
            Ok(0) => Err(Trouble::Stopped),
            Ok(_) => serde_json::from_str(&buf).map_err(|e| Trouble::Garbled(e.to_string())),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err(Trouble::Silent(
                    self.writer
                        .read_timeout()
                        .ok()
                        .flatten()
                        .unwrap_or_default(),
                ))
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => Err(Trouble::Stopped),
            Err(e) => Err(self.io(e)),
        }
    }

    fn io(&self, source: std::io::Error) -> Trouble {
        Trouble::Io {
            path: self.path.clone(),
            source,
        }
    }
}

/// A message without an id: the daemon refused the connection. Known
/// refusals become [`Trouble`]; others are returned as the error object.
fn refusal(m: &Value) -> Result<Value, Trouble> {
    let e = m.get("error").cloned().unwrap_or(Value::Null);
    match (e["code"].as_i64(), e["data"]["reason"].as_str()) {
        (Some(4001), Some("uid")) => Err(Trouble::UidRefused(nix::unistd::getuid().as_raw())),
        (Some(5001), _) => Err(Trouble::Overloaded),
        _ => Ok(e),
    }
}
