//! Where each transaction is posted, per transport profile (gateway.md §3).

use std::collections::BTreeMap;

use ybpos_config::Profile;

use crate::catalogue;

/// Resolves the URL for an infno.
#[derive(Debug, Clone)]
pub struct Endpoints {
    base: String,
    profile: Profile,
    overrides: BTreeMap<String, String>,
}

/// No path is known for this infno in the `fsi-paths` profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no path for infno {0} in the fsi-paths profile; add it under [gateway.paths]")]
pub struct NoPath(pub String);

impl Endpoints {
    /// Endpoints under `base` (no trailing slash) with per-infno overrides.
    pub fn new(base: &str, profile: Profile, overrides: BTreeMap<String, String>) -> Self {
        Endpoints {
            base: base.trim_end_matches('/').to_string(),
            profile,
            overrides,
        }
    }

    /// Whether any URL is `https://` (only then are TLS roots loaded).
    pub fn uses_tls(&self) -> bool {
        std::iter::once(&self.base)
            .chain(self.overrides.values())
            .any(|u| u.starts_with("https://"))
    }

    /// The URL to post `infno` to.
    pub fn url(&self, infno: &str) -> Result<String, NoPath> {
        if let Some(p) = self.overrides.get(infno) {
            return Ok(if p.starts_with("http://") || p.starts_with("https://") {
                p.clone()
            } else {
                format!("{}{}", self.base, p)
            });
        }
        match self.profile {
            Profile::SingleEndpoint => Ok(self.base.clone()),
            Profile::InfnoInUrl => Ok(format!("{}/{}", self.base, infno)),
            Profile::FsiPaths => catalogue::spec(infno)
                .map(|s| {
                    // 2207A has its own path upstream (saveSettletment).
                    if infno == "2207A" {
                        format!("{}/outpatientSettleService/saveSettletment", self.base)
                    } else {
                        format!("{}{}", self.base, s.path)
                    }
                })
                .ok_or_else(|| NoPath(infno.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_profiles() {
        let b = "https://gw.example/fsi/api/";
        let e = Endpoints::new(b, Profile::FsiPaths, BTreeMap::new());
        assert_eq!(
            e.url("2601").unwrap(),
            "https://gw.example/fsi/api/reverseService/revsMethod"
        );
        assert_eq!(
            e.url("1162").unwrap(),
            "https://gw.example/fsi/api/hsecfc/localQrCodeQuery"
        );
        assert!(e.url("7777").is_err());
        let e = Endpoints::new(
            "https://gw/x/callService",
            Profile::SingleEndpoint,
            BTreeMap::new(),
        );
        assert_eq!(e.url("2207").unwrap(), "https://gw/x/callService");
        let e = Endpoints::new(
            "http://igb/ebus/sz/hsa/hgs",
            Profile::InfnoInUrl,
            BTreeMap::new(),
        );
        assert_eq!(e.url("2207").unwrap(), "http://igb/ebus/sz/hsa/hgs/2207");
    }

    #[test]
    fn overrides_win() {
        let mut o = BTreeMap::new();
        o.insert("2207".to_string(), "/custom/path".to_string());
        o.insert("1162".to_string(), "http://decode.local/q".to_string());
        let e = Endpoints::new("https://gw/fsi/api", Profile::FsiPaths, o);
        assert_eq!(e.url("2207").unwrap(), "https://gw/fsi/api/custom/path");
        assert_eq!(e.url("1162").unwrap(), "http://decode.local/q");
    }
}
