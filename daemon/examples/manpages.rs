//! Writes the man pages of `ybposd` and `ybpos` (section 1), generated from
//! their clap definitions, into the folder given as the only argument:
//! `cargo run -p ybpos-daemon --example manpages -- OUT` (the .deb build,
//! `packaging/build-deb.sh`, does this).

use std::path::PathBuf;

use clap::CommandFactory;

fn main() -> std::io::Result<()> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "man".into()));
    std::fs::create_dir_all(&out)?;
    for cmd in [
        ybpos_daemon::args::DaemonArgs::command(),
        ybpos_daemon::cli::Cli::command(),
    ] {
        let name = cmd.get_name().to_string();
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd).section("1").render(&mut page)?;
        let path = out.join(format!("{name}.1"));
        std::fs::write(&path, page)?;
        println!("{}", path.display());
    }
    Ok(())
}
