//! `ybposd`'s command line (clap), in the library so the man page
//! (`daemon/examples/manpages.rs`, clap_mangen) is made from the same
//! definition the binary parses.

use std::path::PathBuf;

use clap::Parser;

/// One line: what ybposd is.
const ABOUT: &str =
    "ybposd — the 医保码 (medical-insurance QR code) terminal daemon for cashier PCs";

/// What ybposd does, for `--help` and the man page.
const LONG_ABOUT: &str = "\
ybposd — the 医保码 (medical-insurance QR code) terminal daemon for cashier PCs.

It owns the barcode scanners, tells a patient's 医保码 from a WeChat/Alipay payment code scanned by
mistake, decodes the code at the provincial settlement gateway, and serves HIS/POS software over a
local JSON-RPC API: the Unix socket /run/ybpos/api.sock and loopback HTTP/WebSocket. Every
settlement is journaled before it leaves and, when its outcome is unknown, undone by the daemon.

systemd runs it (ybposd.service: READY, a watchdog fed only while its core answers, STATUS lines,
SIGHUP to reload the config); people use `ybpos` (ybpos status, ybpos watch); HIS vendors read
docs/openrpc.json or ask the daemon for it (rpc.discover).";

/// Examples, exit status and logs.
const AFTER_HELP: &str = "\
Examples:
  ybposd --demo                              try everything with a simulated gateway and scanner
  ybposd --check-config                      check /etc/ybpos/ybpos.toml, print every problem
  ybposd --config /etc/ybpos/ybpos.toml      run (as the systemd unit does)

Exit status: 0 stopped cleanly or config valid; 1 could not start; 2 --demo in a build without it;
78 bad config (systemd does not restart it).

Logs go to stderr (the journal), filtered by RUST_LOG (default info); ID numbers, names, ecTokens
and codes are never logged in full.";

/// The 医保码 terminal daemon.
///
/// Reads barcode scanners, decodes 医保码 at the provincial settlement
/// gateway, journals and settles transactions, and serves HIS/POS software over a local JSON-RPC API (Unix socket, loopback
/// HTTP and WebSocket). Runs under systemd (ybposd.service): READY, a
/// watchdog fed only while its core answers, STATUS lines, and SIGHUP to
/// reload /etc/ybpos/ybpos.toml.
#[derive(Debug, Parser)]
#[command(
    name = "ybposd",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP
)]
pub struct DaemonArgs {
    /// Config file.
    #[arg(long, default_value = ybpos_config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// Validate the config, print every problem, and exit (0 = valid, 78 = not).
    #[arg(long)]
    pub check_config: bool,
    /// Run the self-contained demo (simulator + virtual scanner); needs no
    /// config, and a ybposd built with the cargo feature `demo` (the default).
    #[arg(long, conflicts_with = "check_config")]
    pub demo: bool,
    /// Create api.token_file with a random token (mode 0640, group
    /// api.socket_group) if it is missing, check it, and exit. Never prints the token.
    #[arg(long, conflicts_with_all = ["check_config", "demo"])]
    pub init_token: bool,
}
