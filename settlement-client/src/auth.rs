//! Gateway authentication headers (gateway.md §3), signing and verifying.
//!
//! Pure functions of (secret, time, nonce, body) so they are checked against
//! independently computed values; the simulator verifies with the same code.

use hmac::{Hmac, Mac};
use sm3::Sm3;

/// A configured signer with its secret loaded.
#[derive(Clone)]
pub enum Signer {
    /// No headers.
    None,
    /// `x-tif-*` (SHA-256).
    Tif {
        /// `x-tif-paasid`.
        paasid: String,
        /// The shared secret.
        secret: String,
    },
    /// `x-ca-*` (HMAC-SM3).
    XCa {
        /// `x-ca-key`.
        key: String,
        /// The shared secret.
        secret: String,
    },
    /// A static `apikey` header.
    ApiKey {
        /// The key.
        key: String,
    },
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.write_str(match self {
            Signer::None => "Signer::None",
            Signer::Tif { .. } => "Signer::Tif",
            Signer::XCa { .. } => "Signer::XCa",
            Signer::ApiKey { .. } => "Signer::ApiKey",
        })
    }
}

/// `x-tif-signature`: lowercase hex SHA-256 of `timestamp + secret + nonce + timestamp`.
pub fn tif_signature(timestamp: &str, secret: &str, nonce: &str) -> String {
    let s = format!("{timestamp}{secret}{nonce}{timestamp}");
    hex::encode(ring::digest::digest(&ring::digest::SHA256, s.as_bytes()))
}

/// `x-ca-signature`: `ts + ":" + UPPERCASE hex(HMAC-SM3(secret, ts + "\n" + body))`.
pub fn xca_signature(timestamp: &str, secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = <Hmac<Sm3> as Mac>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b"\n");
    mac.update(body);
    format!(
        "{timestamp}:{}",
        hex::encode_upper(mac.finalize().into_bytes())
    )
}

impl Signer {
    /// Headers for a request with `body`, at Unix time `unix_secs`, with `nonce`.
    pub fn headers(&self, body: &[u8], unix_secs: i64, nonce: &str) -> Vec<(&'static str, String)> {
        let ts = unix_secs.to_string();
        match self {
            Signer::None => vec![],
            Signer::Tif { paasid, secret } => vec![
                ("x-tif-paasid", paasid.clone()),
                ("x-tif-timestamp", ts.clone()),
                ("x-tif-nonce", nonce.to_string()),
                ("x-tif-signature", tif_signature(&ts, secret, nonce)),
            ],
            Signer::XCa { key, secret } => vec![
                ("x-ca-key", key.clone()),
                ("x-ca-signature", xca_signature(&ts, secret, body)),
            ],
            Signer::ApiKey { key } => vec![("apikey", key.clone())],
        }
    }

    /// Checks a request's headers (simulator side); `Err` says what is wrong.
    ///
    /// `header` looks a header up by lower-case name. Timestamps more than
    /// `max_skew_secs` from `now_secs` are refused.
    pub fn verify(
        &self,
        header: &dyn Fn(&str) -> Option<String>,
        body: &[u8],
        now_secs: i64,
        max_skew_secs: i64,
    ) -> Result<(), String> {
        let need = |n: &str| header(n).ok_or_else(|| format!("missing header {n}"));
        let fresh = |ts: &str| -> Result<(), String> {
            let t: i64 = ts.parse().map_err(|_| format!("bad timestamp {ts:?}"))?;
            if (t - now_secs).abs() > max_skew_secs {
                return Err(format!(
                    "timestamp {t} is more than {max_skew_secs} s from now"
                ));
            }
            Ok(())
        };
        match self {
            Signer::None => Ok(()),
            Signer::Tif { paasid, secret } => {
                if need("x-tif-paasid")? != *paasid {
                    return Err("unknown x-tif-paasid".into());
                }
                let ts = need("x-tif-timestamp")?;
                fresh(&ts)?;
                let nonce = need("x-tif-nonce")?;
                if need("x-tif-signature")? != tif_signature(&ts, secret, &nonce) {
                    return Err("x-tif-signature does not match".into());
                }
                Ok(())
            }
            Signer::XCa { key, secret } => {
                if need("x-ca-key")? != *key {
                    return Err("unknown x-ca-key".into());
                }
                let sig = need("x-ca-signature")?;
                let ts = sig.split(':').next().unwrap_or_default().to_string();
                fresh(&ts)?;
                if sig != xca_signature(&ts, secret, body) {
                    return Err("x-ca-signature does not match".into());
                }
                Ok(())
            }
            Signer::ApiKey { key } => {
                if need("apikey")? != *key {
                    return Err("wrong apikey".into());
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tif_matches_sha256sum() {
        // printf '%s' '1700000000s3cretabc1231700000000' | sha256sum
        let want = {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg("printf '%s' '1700000000s3cretabc1231700000000' | sha256sum")
                .output()
                .expect("sha256sum");
            String::from_utf8(out.stdout).unwrap()[..64].to_string()
        };
        assert_eq!(tif_signature("1700000000", "s3cret", "abc123"), want);
    }

    #[test]
    fn xca_matches_known_hmac_sm3() {
        // HMAC-SM3 test vector: key "key", message "1700000000\n{}",
        // computed independently with OpenSSL 3:
        // printf '1700000000\n{}' | openssl dgst -sm3 -hmac key
        let sig = xca_signature("1700000000", "key", b"{}");
        assert_eq!(
            sig,
            "1700000000:1D4AFCEC7E01F1A9CCA92F688F6D4B26C6ABB837EF0D797A0A3977CE071996CA"
        );
        // SM3("abc") is the standard's own vector; checks the hash we build on.
        use sm3::Digest;
        assert_eq!(
            hex::encode(Sm3::digest(b"abc")),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
    }

    #[test]
    fn xca_matches_openssl_on_a_real_envelope_body() {
        // The body is hashed as UTF-8 bytes (the Zhejiang DLL's GB2312 is a
        // trap, platform-sources.md §3); OpenSSL computes the same HMAC-SM3
        // independently, now.
        let body = r#"{"infno":"9001","msgid":"H33018300564202201211447429999","opter_name":"管理员","input":{"signIn":{"opter_no":"001","mac":"00-11","ip":"10.0.0.8"}}}"#;
        let dir = std::env::temp_dir().join(format!("ybpos-xca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let msg = dir.join("msg");
        std::fs::write(&msg, format!("1700000123\n{body}")).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["dgst", "-sm3", "-hmac", "zj-s3cret", "-r"])
            .arg(&msg)
            .output()
            .expect("openssl (3.x, with SM3) must be installed for this test");
        let _ = std::fs::remove_dir_all(&dir);
        let text = String::from_utf8(out.stdout).unwrap();
        let want = text.split_whitespace().next().unwrap().to_ascii_uppercase();
        assert_eq!(want.len(), 64, "openssl said {text:?}");
        assert_eq!(
            xca_signature("1700000123", "zj-s3cret", body.as_bytes()),
            format!("1700000123:{want}")
        );
    }

    #[test]
    fn signer_and_verifier_agree_and_catch_tampering() {
        let body = br#"{"infno":"9001"}"#;
        for s in [
            Signer::Tif {
                paasid: "p".into(),
                secret: "s".into(),
            },
            Signer::XCa {
                key: "H33018300564".into(),
                secret: "s".into(),
            },
            Signer::ApiKey { key: "k".into() },
            Signer::None,
        ] {
            let h = s.headers(body, 1_700_000_000, "n0nce");
            let get = |n: &str| h.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone());
            assert_eq!(s.verify(&get, body, 1_700_000_010, 300), Ok(()), "{s:?}");
            if !matches!(s, Signer::None | Signer::ApiKey { .. }) {
                let get_bad = |n: &str| {
                    get(n).map(|v| {
                        if n.ends_with("signature") {
                            v.replace('a', "b").replace('A', "B") + "0"
                        } else {
                            v
                        }
                    })
                };
                assert!(
                    s.verify(&get_bad, body, 1_700_000_010, 300).is_err(),
                    "{s:?}"
                );
                assert!(
                    s.verify(&get, body, 1_700_009_999, 300).is_err(),
                    "stale {s:?}"
                );
            }
        }
    }
}
