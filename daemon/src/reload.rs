//! Reload (SIGHUP, `systemctl reload ybposd`): the config file is read and
//! checked again, exactly as `ybposd --check-config` checks it ([`check`]),
//! and what can change under a running daemon is applied without dropping
//! a wait, a connection or a transaction in flight:
//!
//! - `[[scanner]]` entries: unchanged entries are not touched (an open
//!   scanner and a wait on it go on), removed ones stop, changed ones
//!   restart, new ones start ([`scanner_drivers::Drivers::reconfigure`]);
//! - `[api]` `allowed_origins`, `allowed_uids`, `max_request_bytes`,
//!   `max_connections`, `idle_timeout_ms`: for new connections and requests
//!   (open ones keep theirs);
//! - `[log] filter`: at once;
//! - `[gateway]` `connect_timeout_ms`, `request_timeout_ms`,
//!   `max_response_bytes`: for requests that start from now on (one in
//!   flight finishes under its own).
//!
//! A file that fails the check is refused with one log line per problem and
//! the running config stays. Keys that only a restart applies (the
//! terminal's identity, the journal, the gateway's address and credentials,
//! the socket and listener, code recognition, sessions) are named in the log
//! when they differ from what the daemon started with.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use scanner_drivers::Drivers;
use settlement_client::Gateway;
use settlement_client::gateway::GatewaySettings;
use tokio::sync::watch;
use tracing::{error, info, warn};
use ybpos_config::{Api, Config};

use crate::scanhub::ScanHub;

/// Loads `path` and runs every check `--check-config` runs: the config
/// crate's, then the daemon's own (the log filter, the gateway's CA file).
/// Returns every problem, one line each.
pub fn check(path: &Path) -> Result<Config, Vec<String>> {
    let cfg = ybpos_config::load(path)
        .map_err(|e| e.0.iter().map(|p| p.to_string()).collect::<Vec<_>>())?;
    let mut problems = Vec::new();
    if let Some(f) = &cfg.log.filter
        && let Err(e) = crate::logging::check_filter(f)
    {
        problems.push(format!(
            "{}: log.filter: not a valid filter: {e}",
            path.display()
        ));
    }
    match GatewaySettings::from_config(&cfg) {
        Ok(s) => {
            if let Err(e) = settlement_client::http::HttpTransport::new(
                &s.http,
                settlement_client::auth::Signer::None,
                s.endpoints.uses_tls(),
            ) {
                problems.push(format!("{}: gateway.ca_file: {e}", path.display()));
            }
        }
        Err(e) => problems.push(format!(
            "{}: gateway.ca_file: cannot read: {e}",
            path.display()
        )),
    }
    if problems.is_empty() {
        Ok(cfg)
    } else {
        Err(problems)
    }
}

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// What changed and was applied, e.g. `scanner "wedge" added`.
    pub applied: Vec<String>,
    /// Keys that differ from the running daemon's but need a restart.
    pub need_restart: Vec<String>,
}

/// Why a reload changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the config fails --check-config ({} problem(s)); the running config stays", .0.len())]
pub struct Refused(pub Vec<String>);

/// Applies config changes to the running parts.
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    started: Config,
    applied: Mutex<Config>,
    api: watch::Sender<Arc<Api>>,
    drivers: Drivers,
    hub: Arc<ScanHub>,
    gateway: Arc<Gateway>,
}

impl Reloader {
    /// A reloader for the daemon started with `started` (read from `path`).
    pub fn new(
        path: &Path,
        started: Config,
        api: watch::Sender<Arc<Api>>,
        drivers: Drivers,
        hub: Arc<ScanHub>,
        gateway: Arc<Gateway>,
    ) -> Self {
        Reloader {
            path: path.to_path_buf(),
            applied: Mutex::new(started.clone()),
            started,
            api,
            drivers,
            hub,
            gateway,
        }
    }

    /// Reads the file again and applies what can be applied; logs what it
    /// did, refused or could not do.
    pub async fn reload(&self) -> Result<Applied, Refused> {
        let m = crate::metrics::global();
        info!(config = %self.path.display(), "Reloading the configuration.");
        let new = match check(&self.path) {
            Ok(c) => c,
            Err(problems) => {
                for p in &problems {
                    error!(problem = %p, "Config problem.");
                }
                error!(
                    config = %self.path.display(),
                    problems = problems.len(),
                    "Reload refused: the config fails --check-config; the running config stays."
                );
                m.config_reloads.inc(&["refused"]);
                return Err(Refused(problems));
            }
        };
        let old = self
            .applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut out = Applied {
            need_restart: restart_keys(&self.started, &new),
            ..Applied::default()
        };

        // Log filter first, so the rest is logged as asked.
        if new.log.filter != old.log.filter {
            match crate::logging::set_filter(new.log.filter.as_deref()) {
                Ok(()) => out.applied.push(format!(
                    "log.filter = {:?}",
                    new.log.filter.as_deref().unwrap_or("(RUST_LOG)")
                )),
                Err(e) => warn!(error = %e, "Cannot apply log.filter."),
            }
        }

        // Gateway timeouts, for requests from now on.
        let (o, n) = (&old.gateway, &new.gateway);
        if (o.connect_timeout, o.request_timeout, o.max_response_bytes)
            != (n.connect_timeout, n.request_timeout, n.max_response_bytes)
        {
            let settings = GatewaySettings::from_config(&self.started).map(|mut s| {
                s.http.connect_timeout = n.connect_timeout;
                s.http.request_timeout = n.request_timeout;
                s.http.max_response_bytes = n.max_response_bytes;
                s.http
            });
            match settings
                .map_err(|e| e.to_string())
                .and_then(|h| self.gateway.set_http(&h).map_err(|e| e.to_string()))
            {
                Ok(()) => {
                    for (k, a, b) in [
                        (
                            "connect_timeout_ms",
                            o.connect_timeout.as_millis(),
                            n.connect_timeout.as_millis(),
                        ),
                        (
                            "request_timeout_ms",
                            o.request_timeout.as_millis(),
                            n.request_timeout.as_millis(),
                        ),
                        (
                            "max_response_bytes",
                            o.max_response_bytes as u128,
                            n.max_response_bytes as u128,
                        ),
                    ] {
                        if a != b {
                            out.applied.push(format!("gateway.{k} {a} → {b}"));
                        }
                    }
                }
                Err(e) => warn!(error = %e, "Cannot apply the gateway's new timeouts."),
            }
        }

        // API settings for new connections and requests.
        let api_changes = api_changes(&old.api, &new.api);
        if !api_changes.is_empty() {
            let mut api = (**self.api.borrow()).clone();
            api.allowed_origins = new.api.allowed_origins.clone();
            api.allowed_uids = new.api.allowed_uids.clone();
            api.max_request_bytes = new.api.max_request_bytes;
            api.max_connections = new.api.max_connections;
            api.idle_timeout = new.api.idle_timeout;
            self.api.send_replace(Arc::new(api));
            out.applied.extend(api_changes);
        }

        // Scanners: the hub learns new ids before their back ends report.
        self.hub.set_scanners(&new.scanners);
        let r = self.drivers.reconfigure(&new.scanners).await;
        for (what, ids) in [
            ("added", &r.added),
            ("removed", &r.removed),
            ("restarted with new settings", &r.restarted),
        ] {
            for id in ids {
                out.applied.push(format!("scanner {id:?} {what}"));
            }
        }

        *self.applied.lock().unwrap_or_else(|e| e.into_inner()) = new;
        m.config_reloads.inc(&["applied"]);
        if out.applied.is_empty() {
            info!("Reloaded: nothing to apply.");
        } else {
            info!(changes = %out.applied.join("; "), "Reloaded: applied.");
        }
        if !out.need_restart.is_empty() {
            warn!(
                keys = %out.need_restart.join(", "),
                "These keys changed but take effect only after a restart (systemctl restart ybposd)."
            );
        }
        Ok(out)
    }
}

/// The reloadable `[api]` keys that differ.
fn api_changes(o: &Api, n: &Api) -> Vec<String> {
    let mut v = Vec::new();
    if o.allowed_origins != n.allowed_origins {
        v.push(format!("api.allowed_origins = {:?}", n.allowed_origins));
    }
    if o.allowed_uids != n.allowed_uids {
        v.push(format!("api.allowed_uids = {:?}", n.allowed_uids));
    }
    if o.max_request_bytes != n.max_request_bytes {
        v.push(format!("api.max_request_bytes = {}", n.max_request_bytes));
    }
    if o.max_connections != n.max_connections {
        v.push(format!("api.max_connections = {}", n.max_connections));
    }
    if o.idle_timeout != n.idle_timeout {
        v.push(format!(
            "api.idle_timeout_ms = {}",
            n.idle_timeout.as_millis()
        ));
    }
    v
}

/// Keys whose new value differs from the one the daemon started with and
/// that only a restart applies.
pub fn restart_keys(o: &Config, n: &Config) -> Vec<String> {
    let mut v = Vec::new();
    let mut diff = |key: &str, changed: bool| {
        if changed {
            v.push(key.to_string());
        }
    };
    let (a, b) = (&o.terminal, &n.terminal);
    diff(
        "terminal.fixmedins_code",
        a.fixmedins_code != b.fixmedins_code,
    );
    diff(
        "terminal.fixmedins_name",
        a.fixmedins_name != b.fixmedins_name,
    );
    diff(
        "terminal.mdtrtarea_admvs",
        a.mdtrtarea_admvs != b.mdtrtarea_admvs,
    );
    diff("terminal.opter", a.opter != b.opter);
    diff("terminal.opter_name", a.opter_name != b.opter_name);
    diff("terminal.opter_type", a.opter_type != b.opter_type);
    diff("terminal.msgid_node", a.msgid_node != b.msgid_node);
    let (a, b) = (&o.gateway, &n.gateway);
    diff("gateway.url", a.url != b.url);
    diff("gateway.profile", a.profile != b.profile);
    diff("gateway.auth", a.auth != b.auth);
    diff(
        "gateway.recer_sys_code",
        a.recer_sys_code != b.recer_sys_code,
    );
    diff("gateway.infver", a.infver != b.infver);
    diff("gateway.decode_bare", a.decode_bare != b.decode_bare);
    diff("gateway.paths", a.paths != b.paths);
    diff("gateway.ca_file", a.ca_file != b.ca_file);
    diff("gateway.dev_no", a.dev_no != b.dev_no);
    diff("gateway.mac", a.mac != b.mac);
    diff("gateway.ip", a.ip != b.ip);
    let (a, b) = (&o.api, &n.api);
    diff("api.socket", a.socket != b.socket);
    diff("api.socket_group", a.socket_group != b.socket_group);
    diff("api.http_listen", a.http_listen != b.http_listen);
    diff("api.token_file", a.token_file != b.token_file);
    diff("journal.path", o.journal.path != n.journal.path);
    diff(
        "journal.reversal_grace_ms",
        o.journal.reversal_grace != n.journal.reversal_grace,
    );
    diff(
        "codes.dedupe_window_ms",
        o.codes.dedupe_window != n.codes.dedupe_window,
    );
    diff(
        "codes.medical_code_pattern",
        o.codes.medical_code_pattern.as_str() != n.codes.medical_code_pattern.as_str(),
    );
    diff("session.ttl_ms", o.session.ttl != n.session.ttl);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[terminal]
fixmedins_code  = "P42130200001"
fixmedins_name  = "测试药房"
mdtrtarea_admvs = "421381"
opter           = "t1"
[gateway]
url = "http://127.0.0.1:9/fsi/api"
auth = "none"
[api]
socket = "api.sock"
http_listen = ""
"#;

    fn cfg(extra: &str, dir: &Path) -> (PathBuf, Result<Config, Vec<String>>) {
        let p = dir.join("ybpos.toml");
        std::fs::write(&p, format!("{BASE}{extra}")).unwrap();
        let r = check(&p);
        (p, r)
    }

    #[test]
    fn check_refuses_a_bad_log_filter_and_a_bad_key_naming_them() {
        let d = tempfile::tempdir().unwrap();
        let (_, r) = cfg("[log]\nfilter = \"info,ybpos=loud\"\n", d.path());
        let e = r.unwrap_err();
        assert!(e[0].contains("log.filter"), "{e:?}");
        let (_, r) = cfg("[journal]\npaht = \"x\"\n", d.path());
        assert!(r.unwrap_err()[0].contains("journal.paht"));
        let (_, r) = cfg("[log]\nfilter = \"debug,hyper=info\"\n", d.path());
        assert_eq!(r.unwrap().log.filter.as_deref(), Some("debug,hyper=info"));
    }

    #[test]
    fn identity_journal_and_socket_changes_need_a_restart() {
        let d = tempfile::tempdir().unwrap();
        let (_, a) = cfg("", d.path());
        let other = BASE
            .replace("P42130200001", "P42130200002")
            .replace("api.sock", "other.sock");
        let p = d.path().join("b.toml");
        std::fs::write(&p, format!("{other}[journal]\npath = \"j2.db\"\n[api.x]\n")).unwrap();
        assert!(check(&p).is_err(), "unknown table api.x is refused");
        std::fs::write(&p, format!("{other}[journal]\npath = \"j2.db\"\n")).unwrap();
        let b = check(&p).unwrap();
        assert_eq!(
            restart_keys(&a.unwrap(), &b),
            vec!["terminal.fixmedins_code", "api.socket", "journal.path"]
        );
    }
}
