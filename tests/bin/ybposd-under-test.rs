//! The daemon binary as the end-to-end tests run it (same code as `ybposd`;
//! a separate target so the tests package can spawn it by path):
//! `--config PATH`, or `--demo` for the self-contained demo.

fn main() {
    ybpos_daemon::logging::init();
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    if args.iter().any(|a| a == "--demo") {
        let code = rt.block_on(async {
            match ybpos_daemon::demo::run().await {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("ybposd --demo: {e:#}");
                    1
                }
            }
        });
        std::process::exit(code);
    }
    let config = match args.iter().position(|a| a == "--config") {
        Some(i) if i + 1 < args.len() => std::path::PathBuf::from(&args[i + 1]),
        _ => {
            eprintln!("usage: ybposd-under-test --config PATH | --demo");
            std::process::exit(2);
        }
    };
    std::process::exit(rt.block_on(ybpos_daemon::run::main(&config)));
}
