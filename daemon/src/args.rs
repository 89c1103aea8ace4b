//! `ybposd`'s command line (clap), in the library so the man page
//! (`daemon/examples/manpages.rs`, clap_mangen) is made from the same
//! definition the binary parses.

use std::path::PathBuf;

use clap::Parser;

/// The 医保码 terminal daemon.
///
/// Reads barcode scanners, decodes 医保码 at the provincial settlement
/// gateway, journals and settles transactions, and serves HIS/POS software over a local JSON-RPC API (Unix socket, loopback
/// HTTP and WebSocket). Runs under systemd (ybposd.service): READY, a
/// watchdog fed only while its core answers, STATUS lines, and SIGHUP to
/// reload /etc/ybpos/ybpos.toml.
#[derive(Debug, Parser)]
#[command(name = "ybposd", version)]
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
