//! `ybposd`: the 医保码 terminal daemon.
//!
//! `ybposd [--config PATH]` runs it; `--check-config` validates and exits;
//! `--demo` runs everything with a simulator and a virtual scanner (cargo
//! feature `demo`, on by default; a build without it keeps the flag, so
//! `--help` reads the same, and refuses it with exit code 2);
//! `--init-token` creates the HTTP API token file if it is missing (the
//! systemd unit runs it as root, since the daemon cannot write `/etc`).

use clap::Parser;
use ybpos_daemon::args::DaemonArgs as Args;

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
        // The same check a reload runs before it applies anything.
        match ybpos_daemon::reload::check(&args.config) {
            Ok(_) => {
                println!("{}: OK", args.config.display());
                std::process::exit(0);
            }
            Err(problems) => {
                for p in &problems {
                    eprintln!("{p}");
                }
                eprintln!("{} problem(s) in {}", problems.len(), args.config.display());
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
