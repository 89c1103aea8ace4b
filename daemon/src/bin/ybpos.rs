//! `ybpos`: the command line for cashiers, support and monitoring (see `ybpos --help`).

fn main() {
    let code = match ybpos_daemon::cli::parse() {
        Ok(cli) => ybpos_daemon::cli::main(cli),
        Err(code) => code,
    };
    std::process::exit(code);
}
