//! `ybpos-gateway-sim`: the settlement gateway simulator as a program, for
//! HIS vendors' sandboxes and manual testing.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use settlement_client::auth::Signer;
use settlement_sim::{SimSettings, Simulator, tls_config_from_pem};

/// Simulated medical-insurance settlement gateway (all transport profiles).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:17490")]
    listen: SocketAddr,
    /// Authentication to require: none, tif, x-ca, apikey.
    #[arg(long, default_value = "none")]
    auth: String,
    /// x-tif-paasid (tif) or x-ca-key (x-ca).
    #[arg(long, default_value = "")]
    key: String,
    /// File holding the shared secret (tif, x-ca, apikey).
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// Seconds an issued test code stays decodable.
    #[arg(long, default_value_t = 60)]
    code_ttl_secs: i64,
    /// Seconds an ecToken stays valid.
    #[arg(long, default_value_t = 600)]
    token_ttl_secs: i64,
    /// Answer a 2601 of a never-committed msgid with success, as some
    /// platforms do (a late original then still lands).
    #[arg(long)]
    reverse_unknown_ok: bool,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let secret = || -> anyhow::Result<String> {
        let f = args
            .secret_file
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("--secret-file is required for --auth {}", args.auth))?;
        Ok(std::fs::read_to_string(f)?.trim_end().to_string())
    };
    let verifier = match args.auth.as_str() {
        "none" => Signer::None,
        "tif" => Signer::Tif {
            paasid: args.key.clone(),
            secret: secret()?,
        },
        "x-ca" => Signer::XCa {
            key: args.key.clone(),
            secret: secret()?,
        },
        "apikey" => Signer::ApiKey { key: secret()? },
        other => anyhow::bail!("unknown --auth {other:?} (none, tif, x-ca, apikey)"),
    };
    let settings = SimSettings {
        code_ttl: chrono::Duration::seconds(args.code_ttl_secs),
        token_ttl: chrono::Duration::seconds(args.token_ttl_secs),
        reverse_unknown_ok: args.reverse_unknown_ok,
        ..SimSettings::default()
    };
    let sim = Simulator::new(settings, verifier);
    let running = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => {
            let tls = tls_config_from_pem(&std::fs::read(c)?, &std::fs::read(k)?)
                .map_err(|e| anyhow::anyhow!("TLS: {e}"))?;
            sim.bind_tls(args.listen, tls).await?
        }
        _ => sim.bind(args.listen).await?,
    };
    println!("ybpos gateway simulator listening on {}", running.addr);
    println!(
        "  fsi-paths / infno-in-url base URL: {}",
        running.base_url()
    );
    println!(
        "  single-endpoint URL:               {}",
        running.single_endpoint_url()
    );
    let root = running.root_url();
    println!("  test people:   curl {root}/sim/people");
    println!("  issue a code:  curl -X POST {root}/sim/codes -d '{{\"person\":\"0\"}}'");
    println!("  the books:     curl {root}/sim/ledger");
    println!(
        "  a fault:       curl -X POST {root}/sim/faults -d '{{\"infno\":\"2207\",\"kind\":\"commit_then_drop\"}}'"
    );
    println!("  (settlement-sim/SIMULATOR.md documents all of it)");
    tokio::signal::ctrl_c().await?;
    running.shutdown().await;
    Ok(())
}
