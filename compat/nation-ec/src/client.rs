//! One `scan.wait` on ybposd's Unix socket: connect, one request line, read
//! lines until the answer, close. Blocking, with a deadline, one connection
//! per call (so calls on several threads share nothing). Closing the
//! connection — also when the calling process dies — cancels the wait in the
//! daemon and frees the scanner.

use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::Config;

/// The longest answer line read (the daemon's own request limit).
pub const MAX_ANSWER_BYTES: u64 = 1 << 20;

/// Why `scan.wait` gave no result.
#[derive(Debug)]
pub enum CallError {
    /// Nothing listens on the socket (absent, refused, not a socket).
    NotRunning {
        /// The socket.
        socket: PathBuf,
        /// The system's reason.
        error: io::Error,
    },
    /// The socket's permissions refuse this user.
    Denied {
        /// The socket.
        socket: PathBuf,
    },
    /// The daemon closed the connection before answering (stopped, restarted).
    Lost,
    /// No answer within the deadline.
    NoAnswer(Duration),
    /// The answer was not a JSON-RPC answer (too long, not JSON, no result).
    Protocol(&'static str),
    /// The daemon answered with a JSON-RPC error.
    Daemon {
        /// `error.code`.
        code: i64,
        /// `error.message`.
        message: String,
        /// `error.data` (`kind` and its details).
        data: Value,
    },
}

/// The `scan.wait` request line for `business_type` and the configuration.
pub fn request_line(config: &Config, business_type: &str) -> String {
    let mut params = json!({"business_type": business_type});
    if let Some(ms) = config.timeout_ms {
        params["timeout_ms"] = json!(ms);
    }
    if let Some(s) = &config.scanner {
        params["scanner"] = json!(s);
    }
    let mut line =
        json!({"jsonrpc": "2.0", "id": 1, "method": "scan.wait", "params": params}).to_string();
    line.push('\n');
    line
}

/// Waits for the next scan and returns the daemon's identity result.
pub fn scan_wait(config: &Config, business_type: &str) -> Result<Value, CallError> {
    let stream = UnixStream::connect(&config.socket).map_err(|error| {
        if error.kind() == io::ErrorKind::PermissionDenied {
            CallError::Denied {
                socket: config.socket.clone(),
            }
        } else {
            CallError::NotRunning {
                socket: config.socket.clone(),
                error,
            }
        }
    })?;
    let deadline = config.answer_deadline();
    stream
        .set_read_timeout(Some(deadline))
        .and_then(|()| stream.set_write_timeout(Some(Duration::from_secs(5))))
        .map_err(|_| CallError::Lost)?;
    send_all(&stream, request_line(config, business_type).as_bytes())
        .map_err(|_| CallError::Lost)?;
    let mut reader = BufReader::new(&stream);
    let started = std::time::Instant::now();
    loop {
        let mut line = Vec::new();
        let n = (&mut reader)
            .take(MAX_ANSWER_BYTES + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    CallError::NoAnswer(deadline)
                }
                _ => CallError::Lost,
            })?;
        if n == 0 {
            return Err(CallError::Lost);
        }
        if line.last() != Some(&b'\n') {
            return Err(if n as u64 > MAX_ANSWER_BYTES {
                CallError::Protocol("应答过长")
            } else {
                CallError::Lost
            });
        }
        if let Some(answer) = read_answer(&line)? {
            return match answer {
                Err(CallError::Daemon { code: INTERNAL, .. }) if closes_soon(&mut reader) => {
                    Err(CallError::Lost)
                }
                other => other,
            };
        }
        // A notification; the read timeout restarts per read, so keep the
        // overall deadline here.
        if started.elapsed() > deadline {
            return Err(CallError::NoAnswer(deadline));
        }
    }
}

/// JSON-RPC's internal error: what ybposd answers a wait it cancels.
const INTERNAL: i64 = -32603;

/// Whether the daemon closes the connection right after its answer. A
/// stopping ybposd cancels every pending wait, answers it with an internal
/// error ("client disconnected", as if the client had gone), then closes:
/// that is a daemon that went away, and the caller is told so.
fn closes_soon(reader: &mut BufReader<&UnixStream>) -> bool {
    if reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(2)))
        .is_err()
    {
        return false;
    }
    let mut byte = [0u8; 1];
    match reader.read(&mut byte) {
        Ok(0) => true,
        Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

/// Writes all of `bytes` with `MSG_NOSIGNAL`: when the daemon has hung up,
/// the call gets `EPIPE` instead of the host process getting `SIGPIPE` (whose
/// default action, in a C program, is to die).
fn send_all(stream: &UnixStream, mut bytes: &[u8]) -> io::Result<()> {
    use nix::sys::socket::{MsgFlags, send};
    use std::os::fd::AsRawFd;
    while !bytes.is_empty() {
        match send(stream.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// One line from the daemon: `Some` for the answer to our request (id 1),
/// `None` for anything else it may send (notifications).
fn read_answer(line: &[u8]) -> Result<Option<Result<Value, CallError>>, CallError> {
    let msg: Value =
        serde_json::from_slice(line).map_err(|_| CallError::Protocol("应答不是 JSON"))?;
    if msg.get("id") != Some(&json!(1)) {
        return if msg.get("method").is_some() {
            Ok(None)
        } else {
            // An answer without our id: the daemon could not read the request.
            Err(protocol_or_daemon_error(&msg))
        };
    }
    if let Some(result) = msg.get("result") {
        return Ok(Some(Ok(result.clone())));
    }
    Ok(Some(Err(protocol_or_daemon_error(&msg))))
}

fn protocol_or_daemon_error(msg: &Value) -> CallError {
    match msg.get("error") {
        Some(e) => CallError::Daemon {
            code: e.get("code").and_then(Value::as_i64).unwrap_or(-32603),
            message: e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            data: e.get("data").cloned().unwrap_or(Value::Null),
        },
        None => CallError::Protocol("应答既无 result 也无 error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_line() {
        let c = Config::default();
        let line = request_line(&c, "02121");
        assert!(line.ends_with('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v,
            json!({"jsonrpc":"2.0","id":1,"method":"scan.wait","params":{"business_type":"02121"}})
        );
        let c = Config {
            timeout_ms: Some(500),
            scanner: Some("counter".into()),
            ..Config::default()
        };
        let v: Value = serde_json::from_str(&request_line(&c, "01101")).unwrap();
        assert_eq!(
            v["params"],
            json!({"business_type":"01101","timeout_ms":500,"scanner":"counter"})
        );
    }

    #[test]
    fn answers_and_notifications() {
        let r = read_answer(br#"{"jsonrpc":"2.0","id":1,"result":{"a":1}}"#)
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(r, json!({"a": 1}));
        assert!(
            read_answer(br#"{"jsonrpc":"2.0","method":"event","params":{}}"#)
                .unwrap()
                .is_none()
        );
        let e = read_answer(
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":1003,"message":"m","data":{"kind":"scanner_busy"}}}"#,
        )
        .unwrap()
        .unwrap()
        .unwrap_err();
        assert!(matches!(e, CallError::Daemon { code: 1003, .. }));
        // The daemon could not parse our line: id null, an error.
        let e =
            read_answer(br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#)
                .unwrap_err();
        assert!(matches!(e, CallError::Daemon { code: -32700, .. }));
        assert!(matches!(
            read_answer(b"garbage"),
            Err(CallError::Protocol(_))
        ));
        assert!(matches!(
            read_answer(br#"{"jsonrpc":"2.0","id":1}"#)
                .unwrap()
                .unwrap(),
            Err(CallError::Protocol(_))
        ));
    }
}
