//! The daemon binary as the end-to-end tests run it (same code as `ybposd`;
//! a separate target so the tests package can spawn it by path).

fn main() {
    ybpos_daemon::logging::init();
    let args: Vec<String> = std::env::args().collect();
    let config = match args.iter().position(|a| a == "--config") {
        Some(i) if i + 1 < args.len() => std::path::PathBuf::from(&args[i + 1]),
        _ => {
            eprintln!("usage: ybposd-under-test --config PATH");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    std::process::exit(rt.block_on(ybpos_daemon::run::main(&config)));
}
