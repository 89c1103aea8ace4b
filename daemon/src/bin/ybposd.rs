//! `ybposd`: the 医保码 terminal daemon.
//!
//! `ybposd [--config PATH]` runs it; `--check-config` validates and exits;
//! `--demo` runs everything with a simulator and a virtual scanner (cargo
//! feature `demo`, on by default; a build without it keeps the flag, so
//! `--help` reads the same, and refuses it with exit code 2);
//! `--init-token` creates the HTTP API token file if it is missing (the
//! systemd unit runs it as root, since the daemon cannot write `/etc`).

use std::path::PathBuf;

use clap::Parser;

const ABOUT: &str =
    "ybposd — the 医保码 (medical-insurance QR code) terminal daemon for cashier PCs";

const LONG_ABOUT: &str = "\
ybposd — the 医保码 (medical-insurance QR code) terminal daemon for cashier PCs.

It owns the barcode scanners, tells a patient's 医保码 from a WeChat/Alipay payment code scanned by
mistake, decodes the code at the provincial settlement gateway, and serves HIS/POS software over a
local JSON-RPC API: the Unix socket /run/ybpos/api.sock and loopback HTTP/WebSocket. Every
settlement is journaled before it leaves and, when its outcome is unknown, undone by the daemon.

systemd runs it (ybposd.service); people use `ybpos` (ybpos status, ybpos watch); HIS vendors read
docs/openrpc.json or ask the daemon for it (rpc.discover).";

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
#[derive(Debug, Parser)]
#[command(
    name = "ybposd",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP
)]
struct Args {
    /// Config file.
    #[arg(long, default_value = ybpos_config::DEFAULT_PATH)]
    config: PathBuf,
    /// Validate the config, print every problem, and exit (0 = valid, 78 = not).
    #[arg(long)]
    check_config: bool,
    /// Run the self-contained demo (simulator + virtual scanner); needs no
    /// config, and a ybposd built with the cargo feature `demo` (the default).
    #[arg(long, conflicts_with = "check_config")]
    demo: bool,
    /// Create api.token_file with a random token (mode 0640, group
    /// api.socket_group) if it is missing, check it, and exit. Never prints the token.
    #[arg(long, conflicts_with_all = ["check_config", "demo"])]
    init_token: bool,
}

/// `--init-token`: 0 when the token file is usable, 78 for a bad config, 1 otherwise.
fn init_token(config: &std::path::Path) -> i32 {
    let cfg = match ybpos_config::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ybpos_config::EXIT_CONFIG;
        }
    };
    if cfg.api.http_listen.is_none() {
        println!("api.http_listen is \"\": the HTTP API is off and needs no token.");
        return 0;
    }
    let path = &cfg.api.token_file;
    match ybpos_daemon::api::token::load_or_create(path, cfg.api.socket_group.as_deref()) {
        Ok((_, true)) => {
            println!("{}: created with a random token", path.display());
            0
        }
        Ok((_, false)) => {
            println!("{}: OK", path.display());
            0
        }
        Err(e) => {
            eprintln!("ybposd: {e}");
            1
        }
    }
}

fn main() {
    let args = Args::parse();
    #[cfg(not(feature = "demo"))]
    if args.demo {
        eprintln!(
            "ybposd: this ybposd was built without the demo (cargo feature `demo`), \
             as production builds are; run the demo from a default build: \
             `cargo run --bin ybposd -- --demo`"
        );
        std::process::exit(2);
    }
    ybpos_daemon::logging::init();
    if args.init_token {
        std::process::exit(init_token(&args.config));
    }
    if args.check_config {
        match ybpos_config::load(&args.config) {
            Ok(_) => {
                println!("{}: OK", args.config.display());
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("{e}");
                eprintln!("{} problem(s) in {}", e.0.len(), args.config.display());
                std::process::exit(ybpos_config::EXIT_CONFIG);
            }
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ybposd: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(async move {
        #[cfg(feature = "demo")]
        if args.demo {
            return match ybpos_daemon::demo::run().await {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("ybposd --demo: {e:#}");
                    1
                }
            };
        }
        ybpos_daemon::run::main(&args.config).await
    });
    std::process::exit(code);
}
