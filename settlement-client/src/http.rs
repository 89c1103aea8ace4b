//! The HTTP leg: post bytes, classify what came back into an [`Outcome`].
//!
//! Everything about the wire lives here: timeouts, TLS roots, the response
//! size cap, charsets (`charset=GBK` bodies are decoded), and the rule that
//! decides `NotSent` versus `Unknown`.

use std::time::Duration;

use serde_json::Value;
use tracing::debug;

use crate::auth::Signer;
use crate::outcome::Outcome;

/// Settings of the HTTP leg.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Time allowed to connect (failure = not sent).
    pub connect_timeout: Duration,
    /// Time allowed for the whole exchange (past it = unknown).
    pub request_timeout: Duration,
    /// Largest body read; larger = unknown.
    pub max_response_bytes: usize,
    /// Extra trusted CAs (PEM bundle).
    pub ca_pem: Option<Vec<u8>>,
}

/// Building the HTTP client failed (bad CA bundle, TLS setup).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the gateway HTTP client: {0}")]
pub struct HttpSetupError(String);

/// A reusable HTTP poster with signing.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    signer: Signer,
    max_response_bytes: usize,
    /// Whether TLS roots were loaded (some gateway URL is `https://`).
    tls: bool,
}

impl HttpTransport {
    /// Builds the client; with `tls` false (only `http://` URLs) it loads no
    /// TLS roots (reading and parsing the system's took milliseconds and
    /// memory at every start).
    pub fn new(settings: &HttpSettings, signer: Signer, tls: bool) -> Result<Self, HttpSetupError> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .pool_idle_timeout(Duration::from_secs(50))
            .http1_only()
            // A redirected POST could resend a settlement elsewhere (307/308)
            // or silently drop it (302/303): a 3xx is answered as Unknown.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ybposd/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &settings.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| HttpSetupError(format!("ca_file: {e}")))?;
            if certs.is_empty() {
                return Err(HttpSetupError("ca_file holds no PEM certificates".into()));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        if !tls {
            b = b.tls_built_in_root_certs(false);
        }
        let client = b.build().map_err(|e| HttpSetupError(e.to_string()))?;
        Ok(HttpTransport {
            client,
            signer,
            max_response_bytes: settings.max_response_bytes,
            tls,
        })
    }

    /// The same signer with other settings (timeouts, limits, CAs), e.g.
    /// after a config reload.
    pub fn with_settings(&self, settings: &HttpSettings) -> Result<Self, HttpSetupError> {
        HttpTransport::new(settings, self.signer.clone(), self.tls)
    }

    /// Posts `body` to `url` and returns the parsed JSON body, classified.
    ///
    /// `Ok` means HTTP 2xx with a JSON body; the envelope is judged by the caller.
    pub async fn post(&self, url: &str, body: Vec<u8>) -> Outcome<Value> {
        let now = chrono::Utc::now().timestamp();
        let nonce = format!("{:016x}", rand::random::<u64>());
        let mut req = self
            .client
            .post(url)
            .header("content-type", "application/json;charset=utf-8");
        for (k, v) in self.signer.headers(&body, now, &nonce) {
            req = req.header(k, v);
        }
        let resp = match req.body(body).send().await {
            Ok(r) => r,
            Err(e) => return classify_send_error(&e),
        };
        let status = resp.status();
        let charset = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .and_then(charset_of)
            .map(str::to_ascii_lowercase);
        let bytes = match read_limited(resp, self.max_response_bytes).await {
            Ok(b) => b,
            Err(reason) => return Outcome::Unknown { reason },
        };
        if status.is_server_error() {
            return Outcome::Unknown {
                reason: format!("HTTP {status} after sending"),
            };
        }
        let text = match decode_text(&bytes, charset.as_deref()) {
            Some(t) => t,
            None => {
                return Outcome::Unknown {
                    reason: format!(
                        "response body is not valid {}",
                        charset.as_deref().unwrap_or("utf-8")
                    ),
                };
            }
        };
        if status.is_client_error() {
            return Outcome::Rejected {
                infcode: -i64::from(status.as_u16()),
                err_msg: format!("HTTP {status}: {}", snippet(&text)),
            };
        }
        if !status.is_success() {
            return Outcome::Unknown {
                reason: format!("unexpected HTTP {status}"),
            };
        }
        match serde_json::from_str::<Value>(text.trim_start_matches('\u{feff}')) {
            Ok(v) => Outcome::Ok(v),
            Err(e) => Outcome::Unknown {
                reason: format!("response is not JSON: {e}"),
            },
        }
    }
}

fn classify_send_error(e: &reqwest::Error) -> Outcome<Value> {
    let reason = error_chain(e);
    if e.is_connect() || e.is_builder() {
        debug!(%reason, "Gateway request not sent.");
        Outcome::NotSent { reason }
    } else {
        debug!(%reason, "Gateway request outcome unknown.");
        Outcome::Unknown { reason }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

async fn read_limited(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    if let Some(len) = resp.content_length()
        && len > max as u64
    {
        return Err(format!(
            "response of {len} bytes is over the {max}-byte limit"
        ));
    }
    let mut out = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if out.len() + c.len() > max {
                    return Err(format!("response is over the {max}-byte limit"));
                }
                out.extend_from_slice(&c);
            }
            Ok(None) => return Ok(out),
            Err(e) => return Err(format!("response body cut short: {}", error_chain(&e))),
        }
    }
}

/// The `charset=` parameter of a content type.
fn charset_of(ct: &str) -> Option<&str> {
    ct.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case("charset")).then(|| v.trim().trim_matches('"'))
    })
}

/// Decodes a body in its declared charset (UTF-8 when none).
pub fn decode_text(bytes: &[u8], charset: Option<&str>) -> Option<String> {
    match charset {
        None | Some("utf-8") | Some("utf8") => String::from_utf8(bytes.to_vec()).ok(),
        Some(label) => {
            let enc = encoding_rs::Encoding::for_label(label.as_bytes())?;
            enc.decode_without_bom_handling_and_without_replacement(bytes)
                .map(|c| c.into_owned())
        }
    }
}

fn snippet(s: &str) -> String {
    let t: String = s.chars().take(200).collect();
    t.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charsets() {
        assert_eq!(charset_of("application/json;charset=GBK"), Some("GBK"));
        assert_eq!(
            charset_of("application/json; charset=\"utf-8\""),
            Some("utf-8")
        );
        assert_eq!(charset_of("application/json"), None);
        let (gbk, _, _) = encoding_rs::GBK.encode(r#"{"err_msg":"请使用医保电子凭证二维码"}"#);
        assert_eq!(
            decode_text(&gbk, Some("gbk")).unwrap(),
            r#"{"err_msg":"请使用医保电子凭证二维码"}"#
        );
        assert!(decode_text(&gbk, None).is_none());
    }
}
