//! The `ybpos` command line as the end-to-end tests run it (same code as
//! `ybpos`; a target of this package so the tests can spawn it by path).

fn main() {
    let code = match ybpos_daemon::cli::parse() {
        Ok(cli) => ybpos_daemon::cli::main(cli),
        Err(code) => code,
    };
    std::process::exit(code);
}
