//! `ybpos`: command line for cashiers and support (see `ybpos --help`).

use clap::Parser;

fn main() {
    let cli = ybpos_daemon::cli::Cli::parse();
    match ybpos_daemon::cli::main(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("ybpos: {e:#}");
            std::process::exit(2);
        }
    }
}
