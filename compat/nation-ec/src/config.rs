//! Configuration from the environment, read afresh at every call (the
//! library keeps no other state, so calls from many threads share nothing).
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `YBPOS_SOCKET` | ybposd's API socket | `/run/ybpos/api.sock` |
//! | `YBPOS_COMPAT_ENCODING` | `utf-8` or `gbk` (also `cp936`, `gb2312`) | `utf-8` |
//! | `YBPOS_COMPAT_OUTBUF` | the caller's output buffer in bytes, terminator included (256 – 1048576) | `4096` |
//! | `YBPOS_COMPAT_TIMEOUT_MS` | how long `scan.wait` waits for a scan (1 – 120000) | the daemon's (30 s) |
//! | `YBPOS_COMPAT_SCANNER` | which scanner (`[[scanner]] id`) | the daemon's first |
//!
//! An empty variable counts as unset. A bad value is not guessed around:
//! every call then answers a configuration error naming the variable.

use std::path::PathBuf;
use std::time::Duration;

/// ybposd's socket when `YBPOS_SOCKET` is unset.
pub const DEFAULT_SOCKET: &str = "/run/ybpos/api.sock";
/// The output buffer assumed when `YBPOS_COMPAT_OUTBUF` is unset: the
/// smallest any known integrator allocates (terminator included).
pub const DEFAULT_OUTBUF: usize = 4096;
/// The smallest `YBPOS_COMPAT_OUTBUF` accepted (every error answer fits).
pub const MIN_OUTBUF: usize = 256;
/// The largest `YBPOS_COMPAT_OUTBUF` accepted.
pub const MAX_OUTBUF: usize = 1 << 20;
/// The longest `scan.wait` the daemon allows (local-api.md).
pub const MAX_TIMEOUT_MS: u64 = 120_000;
/// How long after the scan deadline the daemon may still take to answer
/// (decode and 1101 at the gateway) before the call gives up on it.
pub const ANSWER_GRACE: Duration = Duration::from_secs(60);

/// The text encoding of the strings the caller passes and receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8 (Linux programs, Java/Python callers).
    Utf8,
    /// GBK (CP936): programs ported from Chinese Windows' "ANSI" strings.
    Gbk,
}

/// A variable with a value the library cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The variable.
    pub var: &'static str,
    /// Its value (at most 64 characters of it).
    pub value: String,
    /// What it should be.
    pub expected: &'static str,
}

impl ConfigProblem {
    /// The Chinese message of the error answer.
    pub fn message(&self) -> String {
        format!(
            "ybpos 兼容库配置无效：{}={:?}，应为{}",
            self.var, self.value, self.expected
        )
    }
}

/// Everything a call needs to know besides its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// ybposd's Unix socket.
    pub socket: PathBuf,
    /// Encoding of the input and output strings.
    pub encoding: Encoding,
    /// The caller's output buffer, terminator included.
    pub outbuf: usize,
    /// `timeout_ms` of `scan.wait`; `None` leaves the daemon's default.
    pub timeout_ms: Option<u64>,
    /// `scanner` of `scan.wait`; `None` leaves the daemon's default.
    pub scanner: Option<String>,
    /// Extra time for the daemon's answer after the scan deadline.
    pub answer_grace: Duration,
    /// The first bad variable, if any: every call answers it as an error.
    pub problem: Option<ConfigProblem>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            socket: PathBuf::from(DEFAULT_SOCKET),
            encoding: Encoding::Utf8,
            outbuf: DEFAULT_OUTBUF,
            timeout_ms: None,
            scanner: None,
            answer_grace: ANSWER_GRACE,
            problem: None,
        }
    }
}

impl Config {
    /// The configuration of the process environment.
    pub fn from_env() -> Config {
        Config::from_vars(|k| std::env::var_os(k).map(|v| v.to_string_lossy().into_owned()))
    }

    /// The configuration given a variable lookup (tests pass a map).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Config {
        let get = |k: &str| get(k).filter(|v| !v.is_empty());
        let mut c = Config::default();
        let mut problems = Vec::new();
        if let Some(s) = get("YBPOS_SOCKET") {
            c.socket = PathBuf::from(s);
        }
        if let Some(v) = get("YBPOS_COMPAT_ENCODING") {
            match v.to_ascii_lowercase().as_str() {
                "utf-8" | "utf8" => c.encoding = Encoding::Utf8,
                "gbk" | "cp936" | "gb2312" => c.encoding = Encoding::Gbk,
                _ => problems.push(problem("YBPOS_COMPAT_ENCODING", &v, " utf-8 或 gbk")),
            }
        }
        if let Some(v) = get("YBPOS_COMPAT_OUTBUF") {
            match v.trim().parse::<usize>() {
                Ok(n) if (MIN_OUTBUF..=MAX_OUTBUF).contains(&n) => c.outbuf = n,
                _ => {
                    // The caller's buffer is unknown: answer within the least.
                    c.outbuf = MIN_OUTBUF;
                    problems.push(problem(
                        "YBPOS_COMPAT_OUTBUF",
                        &v,
                        "输出缓冲区的字节数（含结尾 NUL），256 到 1048576",
                    ));
                }
            }
        }
        if let Some(v) = get("YBPOS_COMPAT_TIMEOUT_MS") {
            match v.trim().parse::<u64>() {
                Ok(n) if (1..=MAX_TIMEOUT_MS).contains(&n) => c.timeout_ms = Some(n),
                _ => problems.push(problem(
                    "YBPOS_COMPAT_TIMEOUT_MS",
                    &v,
                    "等待扫码的毫秒数，1 到 120000",
                )),
            }
        }
        c.scanner = get("YBPOS_COMPAT_SCANNER");
        c.problem = problems.into_iter().next();
        c
    }

    /// How long the call waits for the daemon's answer in all.
    pub fn answer_deadline(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.unwrap_or(MAX_TIMEOUT_MS)) + self.answer_grace
    }
}

fn problem(var: &'static str, value: &str, expected: &'static str) -> ConfigProblem {
    ConfigProblem {
        var,
        value: value.chars().take(64).collect(),
        expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Config {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_vars(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = cfg(&[]);
        assert_eq!(c, Config::default());
        assert_eq!(c.socket, PathBuf::from("/run/ybpos/api.sock"));
        assert_eq!(c.outbuf, 4096);
        assert_eq!(c.encoding, Encoding::Utf8);
        assert_eq!(c.answer_deadline(), Duration::from_secs(180));
    }

    #[test]
    fn every_variable() {
        let c = cfg(&[
            ("YBPOS_SOCKET", "/tmp/x.sock"),
            ("YBPOS_COMPAT_ENCODING", "GBK"),
            ("YBPOS_COMPAT_OUTBUF", "20480"),
            ("YBPOS_COMPAT_TIMEOUT_MS", "5000"),
            ("YBPOS_COMPAT_SCANNER", "counter"),
        ]);
        assert_eq!(c.socket, PathBuf::from("/tmp/x.sock"));
        assert_eq!(c.encoding, Encoding::Gbk);
        assert_eq!(c.outbuf, 20480);
        assert_eq!(c.timeout_ms, Some(5000));
        assert_eq!(c.scanner.as_deref(), Some("counter"));
        assert_eq!(c.answer_deadline(), Duration::from_secs(65));
        assert!(c.problem.is_none());
        assert_eq!(
            cfg(&[("YBPOS_COMPAT_ENCODING", "cp936")]).encoding,
            Encoding::Gbk
        );
        assert_eq!(
            cfg(&[("YBPOS_COMPAT_ENCODING", "utf8")]).encoding,
            Encoding::Utf8
        );
        // Empty is unset.
        assert_eq!(
            cfg(&[("YBPOS_SOCKET", ""), ("YBPOS_COMPAT_OUTBUF", "")]),
            Config::default()
        );
    }

    #[test]
    fn bad_values_are_problems_and_never_widen_the_buffer() {
        let c = cfg(&[("YBPOS_COMPAT_ENCODING", "latin1")]);
        assert_eq!(c.problem.as_ref().unwrap().var, "YBPOS_COMPAT_ENCODING");
        assert!(c.problem.unwrap().message().contains("utf-8 或 gbk"));
        for bad in ["abc", "100", "99999999", "-1"] {
            let c = cfg(&[("YBPOS_COMPAT_OUTBUF", bad)]);
            assert_eq!(c.problem.unwrap().var, "YBPOS_COMPAT_OUTBUF");
            assert_eq!(c.outbuf, MIN_OUTBUF, "{bad}");
        }
        for bad in ["0", "120001", "soon"] {
            let c = cfg(&[("YBPOS_COMPAT_TIMEOUT_MS", bad)]);
            assert_eq!(c.problem.unwrap().var, "YBPOS_COMPAT_TIMEOUT_MS");
        }
        let long = "x".repeat(500);
        let c = cfg(&[("YBPOS_COMPAT_ENCODING", &long)]);
        assert_eq!(c.problem.unwrap().value.len(), 64);
    }
}
