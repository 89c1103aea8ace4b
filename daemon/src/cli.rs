//! `ybpos`: the command line for cashiers and support staff.
//!
//! A thin client of the local API over the Unix socket: every subcommand is
//! one JSON-RPC call (or a stream of events), printed as readable JSON.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

/// Talk to ybposd over its local API.
#[derive(Debug, Parser)]
#[command(name = "ybpos", version)]
pub struct Cli {
    /// The daemon's API socket.
    #[arg(long, env = "YBPOS_SOCKET", default_value = "/run/ybpos/api.sock")]
    pub socket: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Daemon, gateway and scanner status (`system.info`).
    Info,
    /// Scanners and their states (`scanner.list`).
    Scanners,
    /// Wait for a 医保码 scan and show the person (`scan.wait`).
    Wait {
        /// 用码业务类型: 02121 pharmacy, 01101 register, 01103 admission, 01301 settlement.
        #[arg(default_value = "02121")]
        business_type: String,
        /// Scanner id (default: the first).
        #[arg(long)]
        scanner: Option<String>,
        /// Give up after this many milliseconds (at most 120000).
        #[arg(long)]
        timeout_ms: Option<u64>,
    },
    /// Look a person up without a scan (`identity.lookup`).
    Lookup {
        /// 用码业务类型.
        #[arg(long, default_value = "01101")]
        business_type: String,
        /// A 医保码 read by a camera or typed.
        #[arg(long, conflicts_with_all = ["id_card", "ss_card"])]
        qr: Option<String>,
        /// ID card number (patients without a smartphone).
        #[arg(long, conflicts_with = "ss_card")]
        id_card: Option<String>,
        /// Name on the ID card.
        #[arg(long)]
        name: Option<String>,
        /// Social-security card number.
        #[arg(long, requires = "card_sn")]
        ss_card: Option<String>,
        /// Social-security card serial.
        #[arg(long)]
        card_sn: Option<String>,
    },
    /// Print events as they happen (`events.subscribe`).
    Events {
        /// Topics: scan, scanner, txn, gateway (default all).
        topics: Vec<String>,
    },
    /// Demo only: put a test code into the virtual scanner (`demo.scan`).
    ScanSim {
        /// Test person: 0–3, a psn_no or a name.
        #[arg(long)]
        person: Option<String>,
        /// medical, wechat, alipay, unionpay or garbage.
        #[arg(long, default_value = "medical")]
        kind: String,
        /// Scan exactly this text.
        #[arg(long)]
        text: Option<String>,
    },
    /// Any method with JSON params, e.g. `call txn.get '{"client_ref":"A1"}'`.
    Call {
        /// Method name.
        method: String,
        /// Params as a JSON object.
        #[arg(default_value = "{}")]
        params: String,
    },
}

/// A synchronous JSON-RPC client on the Unix socket.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
}

impl Client {
    /// Connects to the socket.
    pub fn connect(path: &std::path::Path) -> anyhow::Result<Client> {
        let s = UnixStream::connect(path).with_context(|| {
            format!(
                "cannot connect to {} (is ybposd running? is --socket right?)",
                path.display()
            )
        })?;
        Ok(Client {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
            next_id: 1,
        })
    }

    /// Sends one request and returns its `result`, or the error object.
    pub fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Result<Value, Value>> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line =
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes())?;
        loop {
            let msg = self.read()?;
            if msg.get("id") == Some(&json!(id)) {
                return Ok(match msg.get("error") {
                    Some(e) => Err(e.clone()),
                    None => Ok(msg.get("result").cloned().unwrap_or(Value::Null)),
                });
            }
        }
    }

    /// Reads the next message (response or notification).
    pub fn read(&mut self) -> anyhow::Result<Value> {
        let mut buf = String::new();
        if self.reader.read_line(&mut buf)? == 0 {
            bail!("the daemon closed the connection");
        }
        Ok(serde_json::from_str(&buf)?)
    }
}

fn print(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Runs the CLI; returns the process exit code.
pub fn main(cli: Cli) -> anyhow::Result<i32> {
    let mut c = Client::connect(&cli.socket)?;
    let (method, params) = match cli.cmd {
        Cmd::Info => ("system.info".to_string(), json!({})),
        Cmd::Scanners => ("scanner.list".to_string(), json!({})),
        Cmd::Wait {
            business_type,
            scanner,
            timeout_ms,
        } => {
            eprintln!("Waiting for a scan (business type {business_type})…");
            let mut p = json!({"business_type": business_type});
            if let Some(s) = scanner {
                p["scanner"] = json!(s);
            }
            if let Some(t) = timeout_ms {
                p["timeout_ms"] = json!(t);
            }
            ("scan.wait".to_string(), p)
        }
        Cmd::Lookup {
            business_type,
            qr,
            id_card,
            name,
            ss_card,
            card_sn,
        } => {
            let credential = if let Some(v) = qr {
                json!({"type": "qr", "value": v})
            } else if let Some(certno) = id_card {
                json!({"type": "id_card", "certno": certno, "psn_name": name})
            } else if let Some(card_no) = ss_card {
                json!({"type": "ss_card", "card_no": card_no, "card_sn": card_sn})
            } else {
                bail!("give --qr, --id-card or --ss-card");
            };
            (
                "identity.lookup".to_string(),
                json!({"business_type": business_type, "credential": credential}),
            )
        }
        Cmd::Events { topics } => {
            let p = if topics.is_empty() {
                json!({})
            } else {
                json!({"topics": topics})
            };
            match c.call("events.subscribe", p)? {
                Ok(_) => loop {
                    let m = c.read()?;
                    if let Some(p) = m.get("params") {
                        println!("{p}");
                    }
                },
                Err(e) => {
                    print(&e);
                    return Ok(1);
                }
            }
        }
        Cmd::ScanSim { person, kind, text } => (
            "demo.scan".to_string(),
            json!({"person": person, "kind": kind, "text": text}),
        ),
        Cmd::Call { method, params } => {
            let p: Value = serde_json::from_str(&params).context("params must be a JSON object")?;
            (method, p)
        }
    };
    match c.call(&method, params)? {
        Ok(v) => {
            print(&v);
            Ok(0)
        }
        Err(e) => {
            eprintln!("error: {}", e["message"].as_str().unwrap_or("?"));
            print(&e);
            Ok(1)
        }
    }
}
