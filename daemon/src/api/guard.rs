//! Who may use the HTTP/WebSocket API: the `Host`, `Origin` and token checks
//! of local-api.md (Transports 2), without I/O so they can be tested with strings.
//!
//! - **Host** (DNS rebinding): a page on `evil.example` whose name re-resolves
//!   to 127.0.0.1 reaches the daemon with `Host: evil.example:17480`. Only
//!   `localhost`, loopback IP literals and, when the listener is bound to a
//!   non-loopback address (`http_allow_non_loopback`), that address, each with
//!   the listener's port, are accepted. IP literals cannot be rebound, so on an
//!   unspecified bind (`0.0.0.0`) any IP literal with the port is accepted.
//! - **Origin**: browsers send it on cross-origin requests and on every
//!   WebSocket upgrade (which CORS does not protect). When present it must be
//!   in `api.allowed_origins` (compared without case and trailing `/`).
//! - **Token**: `Authorization: Bearer T`, or `?token=T` on `/v1/ws` only
//!   (browsers cannot set headers on a WebSocket). Compared in constant time
//!   (see [`Token`]).

use std::net::{IpAddr, SocketAddr};

use ring::hmac;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 403: `Host` is not a loopback name with the right port.
    Host(String),
    /// 403: `Origin` is present and not allowed.
    Origin(String),
    /// 401: no token, or a wrong one.
    Token(&'static str),
}

impl Refusal {
    /// The metrics label.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Host(_) => "host",
            Refusal::Origin(_) => "origin",
            Refusal::Token(_) => "token",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Host(h) => write!(
                f,
                "Host {h:?} is not allowed: use http://127.0.0.1:PORT or http://localhost:PORT \
                 (protection against DNS rebinding)"
            ),
            Refusal::Origin(o) => write!(
                f,
                "Origin {o:?} is not in api.allowed_origins: a web page may not drive this terminal"
            ),
            Refusal::Token(why) => f.write_str(why),
        }
    }
}

/// The API token, kept as an HMAC tag under a per-process random key, so
/// checking a presented token is `ring::hmac::verify`: constant time, and
/// independent of the presented token's length (ring's `constant_time`
/// module is deprecated; this is its supported equivalent).
pub struct Token {
    key: hmac::Key,
    tag: hmac::Tag,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

impl Token {
    /// Keeps `secret` (only its tag is stored).
    pub fn new(secret: &str) -> Result<Token, ring::error::Unspecified> {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())?;
        let tag = hmac::sign(&key, secret.as_bytes());
        Ok(Token { key, tag })
    }

    /// Whether `presented` is the token.
    pub fn matches(&self, presented: &[u8]) -> bool {
        hmac::verify(&self.key, presented, self.tag.as_ref()).is_ok()
    }
}

/// The checks for one listener.
#[derive(Debug)]
pub struct Guard {
    port: u16,
    bound_ip: IpAddr,
    origins: std::sync::RwLock<Vec<String>>,
    token: Token,
}

impl Guard {
    /// Checks for a listener bound to `local`.
    pub fn new(local: SocketAddr, allowed_origins: &[String], token: Token) -> Guard {
        Guard {
            port: local.port(),
            bound_ip: local.ip(),
            origins: std::sync::RwLock::new(allowed_origins.iter().map(|o| normalize(o)).collect()),
            token,
        }
    }

    /// The `Host` check. `host` is the header's value (`None` when absent or
    /// repeated: both refused).
    pub fn check_host(&self, host: Option<&str>) -> Result<(), Refusal> {
        let refuse = || {
            Err(Refusal::Host(
                host.unwrap_or("").chars().take(100).collect(),
            ))
        };
        let Some(h) = host else { return refuse() };
        let Some((name, port)) = split_host(h) else {
            return refuse();
        };
        if port.unwrap_or(80) != self.port {
            return refuse();
        }
        if name.eq_ignore_ascii_case("localhost") {
            return Ok(());
        }
        let ip = match name.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => return refuse(),
        };
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        if ip.is_loopback() || ip == self.bound_ip || self.bound_ip.is_unspecified() {
            Ok(())
        } else {
            refuse()
        }
    }

    /// Replaces the allowed origins (`api.allowed_origins`, on reload).
    pub fn set_origins(&self, allowed_origins: &[String]) {
        *self.origins.write().unwrap_or_else(|e| e.into_inner()) =
            allowed_origins.iter().map(|o| normalize(o)).collect();
    }

    /// The `Origin` check; `None` (no header: not a browser, or same-origin
    /// GET) passes.
    pub fn check_origin(&self, origin: Option<&str>) -> Result<(), Refusal> {
        match origin {
            None => Ok(()),
            Some(o)
                if self
                    .origins
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .any(|a| *a == normalize(o)) =>
            {
                Ok(())
            }
            Some(o) => Err(Refusal::Origin(o.chars().take(200).collect())),
        }
    }

    /// The token check: `authorization` is the header's raw value,
    /// `query_token` the `token` query parameter where one is accepted.
    pub fn check_token(
        &self,
        authorization: Option<&[u8]>,
        query_token: Option<&str>,
    ) -> Result<(), Refusal> {
        let presented: &[u8] = match (authorization, query_token) {
            (Some(a), _) => {
                let Some(t) = bearer(a) else {
                    return Err(Refusal::Token(
                        "the Authorization header must be \"Bearer <token>\"",
                    ));
                };
                t
            }
            (None, Some(q)) => q.as_bytes(),
            (None, None) => {
                return Err(Refusal::Token(
                    "an API token is required: Authorization: Bearer <token> \
                     (or ?token=<token> on /v1/ws)",
                ));
            }
        };
        if self.token.matches(presented) {
            Ok(())
        } else {
            Err(Refusal::Token("wrong API token"))
        }
    }
}

/// `Bearer T` → `T` (scheme without case, spaces around).
fn bearer(v: &[u8]) -> Option<&[u8]> {
    let v = v.trim_ascii();
    if v.len() < 7 || !v[..6].eq_ignore_ascii_case(b"bearer") || v[6] != b' ' {
        return None;
    }
    let t = v[7..].trim_ascii();
    (!t.is_empty()).then_some(t)
}

/// Splits `name[:port]` / `[v6][:port]`; `None` when malformed.
fn split_host(h: &str) -> Option<(&str, Option<u16>)> {
    let (name, rest) = if let Some(r) = h.strip_prefix('[') {
        let end = r.find(']')?;
        (&r[..end], &r[end + 1..])
    } else {
        match h.rfind(':') {
            Some(i) => (&h[..i], &h[i..]),
            None => (h, ""),
        }
    };
    if name.is_empty() || (name.contains(':') && !h.starts_with('[')) {
        return None;
    }
    let port = match rest {
        "" => None,
        r => Some(r.strip_prefix(':')?.parse::<u16>().ok()?),
    };
    Some((name, port))
}

fn normalize(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(bind: &str) -> Guard {
        Guard::new(
            bind.parse().unwrap(),
            &[
                "http://his.local".into(),
                "https://HIS.example:8443/".into(),
            ],
            Token::new("0123456789abcdef0123456789abcdef").unwrap(),
        )
    }

    #[test]
    fn loopback_hosts_with_the_right_port_pass() {
        let g = guard("127.0.0.1:17480");
        for h in [
            "127.0.0.1:17480",
            "localhost:17480",
            "LocalHost:17480",
            "[::1]:17480",
            "127.0.0.2:17480",
            "[::ffff:127.0.0.1]:17480",
        ] {
            assert_eq!(g.check_host(Some(h)), Ok(()), "{h}");
        }
    }

    #[test]
    fn foreign_or_malformed_hosts_are_refused() {
        let g = guard("127.0.0.1:17480");
        for h in [
            "evil.example:17480",
            "evil.example",
            "127.0.0.1",
            "127.0.0.1:80",
            "localhost:17481",
            "localhost.:17480",
            "sub.localhost:17480",
            "127.0.0.1.nip.io:17480",
            "192.168.1.5:17480",
            "[::1]",
            "[::1:17480",
            "::1:17480",
            "localhost:",
            "localhost:99999",
            ":17480",
            "",
        ] {
            assert!(
                matches!(g.check_host(Some(h)), Err(Refusal::Host(_))),
                "{h} must be refused"
            );
        }
        assert!(g.check_host(None).is_err());
    }

    #[test]
    fn port_80_may_be_implicit_and_a_non_loopback_bind_accepts_its_address() {
        let g = guard("127.0.0.1:80");
        assert!(g.check_host(Some("localhost")).is_ok());
        assert!(g.check_host(Some("localhost:80")).is_ok());
        let g = guard("192.168.1.5:17480");
        assert!(g.check_host(Some("192.168.1.5:17480")).is_ok());
        assert!(g.check_host(Some("192.168.1.6:17480")).is_err());
        assert!(g.check_host(Some("pos.lan:17480")).is_err());
        let g = guard("0.0.0.0:17480");
        assert!(g.check_host(Some("10.0.0.7:17480")).is_ok());
        assert!(g.check_host(Some("pos.lan:17480")).is_err());
    }

    #[test]
    fn origins() {
        let g = guard("127.0.0.1:17480");
        assert!(g.check_origin(None).is_ok());
        assert!(g.check_origin(Some("http://his.local")).is_ok());
        assert!(g.check_origin(Some("http://HIS.local/")).is_ok());
        assert!(g.check_origin(Some("https://his.example:8443")).is_ok());
        for o in [
            "https://his.local",
            "http://his.local:8080",
            "http://evil.example",
            "null",
            "",
            "http://his.local.evil.example",
        ] {
            assert!(
                matches!(g.check_origin(Some(o)), Err(Refusal::Origin(_))),
                "{o}"
            );
        }
    }

    #[test]
    fn tokens() {
        let g = guard("127.0.0.1:17480");
        let t = "0123456789abcdef0123456789abcdef";
        assert!(
            g.check_token(Some(format!("Bearer {t}").as_bytes()), None)
                .is_ok()
        );
        assert!(
            g.check_token(Some(format!("bearer  {t} ").as_bytes()), None)
                .is_ok()
        );
        assert!(g.check_token(None, Some(t)).is_ok());
        assert_eq!(
            g.check_token(Some(b"Bearer wrong"), None),
            Err(Refusal::Token("wrong API token"))
        );
        // The header wins over the query: a wrong header is not rescued by a right query.
        assert!(g.check_token(Some(b"Bearer wrong"), Some(t)).is_err());
        assert!(g.check_token(Some(t.as_bytes()), None).is_err());
        assert!(
            g.check_token(Some(format!("Basic {t}").as_bytes()), None)
                .is_err()
        );
        assert!(g.check_token(Some(b"Bearer "), None).is_err());
        assert!(g.check_token(None, Some("")).is_err());
        assert!(g.check_token(None, Some(&t[..31])).is_err());
        assert!(g.check_token(None, Some(&format!("{t}0"))).is_err());
        assert!(matches!(g.check_token(None, None), Err(Refusal::Token(_))));
    }

    #[test]
    fn token_debug_does_not_show_it() {
        let t = Token::new("secret-secret-secret").unwrap();
        assert!(!format!("{t:?}").contains("secret"));
    }
}
