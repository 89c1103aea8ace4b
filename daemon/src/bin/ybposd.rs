//! `ybposd`: the 医保码 terminal daemon.
//!
//! `ybposd [--config PATH]` runs it; `--check-config` validates and exits;
//! `--demo` runs everything with a simulator and a virtual scanner.

use std::path::PathBuf;

use clap::Parser;

/// The 医保码 terminal daemon.
#[derive(Debug, Parser)]
#[command(name = "ybposd", version, about)]
struct Args {
    /// Config file.
    #[arg(long, default_value = ybpos_config::DEFAULT_PATH)]
    config: PathBuf,
    /// Validate the config, print every problem, and exit (0 = valid, 78 = not).
    #[arg(long)]
    check_config: bool,
    /// Run the self-contained demo (simulator + virtual scanner); needs no config.
    #[arg(long, conflicts_with = "check_config")]
    demo: bool,
}

fn main() {
    let args = Args::parse();
    ybpos_daemon::logging::init();
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
