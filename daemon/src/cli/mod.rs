//! `ybpos`: the command line for cashiers, support staff and monitoring.
//!
//! A client of the local API over the Unix socket. People get readable
//! output in the terminal's local time zone, errors in plain words with the
//! next step, and colour only on a TTY; `--json` prints the API's answers as
//! they are, for scripts. Exit codes are stable ([`exit`]) so monitoring can
//! run `ybpos status`.
//!
//! - [`client`]: the blocking JSON-RPC client and its [`Trouble`]s;
//! - [`show`]: human output (times, tables, the person block, records);
//! - `status`: `ybpos status` and `ybpos scanners`; `watch`: `ybpos watch`;
//!   `txn`: `ybpos txn get|list|resolve`.

pub mod client;
pub mod show;
mod status;
mod txn;
mod watch;

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Local, NaiveDate};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};
use settlement_client::redact::mask;

pub use client::{Client, Trouble};
use show::Paint;
use status::{scanners, status};
pub use txn::since;
use txn::txn;
pub use watch::event_line;
use watch::watch;

/// Exit codes of `ybpos` (the monitoring plugins' convention for `status`).
pub mod exit {
    /// Done; for `status`: nothing needs attention.
    pub const OK: i32 = 0;
    /// `status`: something to look at soon (gateway offline, a scanner not
    /// connected, records being resolved for long); other commands: the
    /// daemon answered with an error (nothing scanned, refused, bad value).
    pub const WARNING: i32 = 1;
    /// `status`: a record needs a person (`ybpos txn resolve`).
    pub const NEEDS_PERSON: i32 = 2;
    /// The daemon could not be asked: not running, no permission, no answer.
    pub const UNREACHABLE: i32 = 3;
    /// Wrong usage of `ybpos` itself (sysexits' EX_USAGE).
    pub const USAGE: i32 = 64;
}

const ABOUT: &str =
    "ybpos — the cashier's and support's view of ybposd, the 医保码 terminal daemon";

const LONG_ABOUT: &str = "\
ybpos — the cashier's and support's view of ybposd, the 医保码 (medical-insurance QR code) terminal daemon.

It asks the daemon running on this PC, over its local API socket: is everything working, what is
being scanned, who is this patient, what happened to a sale, how much was settled with the 医保码.
Times are shown in this computer's time zone; ID numbers are masked.";

const AFTER_HELP: &str = "\
Examples:
  ybpos status                          what works, what needs a person (for monitoring too)
  ybpos watch                           scans and sales as they happen
  ybpos wait                            wait for the patient's 医保码 and show the person
  ybpos lookup --id-card 4201… --name 张三
  ybpos txn list --needs-person         records a person must close
  ybpos txn resolve txn_… --outcome reversed --operator 王会计 --note \"refund seen on the platform\"
  ybpos report usage --from 2026-11-01 --to 2026-11-30

Exit status:
  0   done; status: all well
  1   the daemon said no (nothing scanned, payment code, refused, bad value);
      status: warning (gateway offline, scanner not connected, records resolving for long)
  2   status: a transaction needs a person (ybpos txn list --needs-person)
  3   the daemon could not be asked (not running, no permission, no answer)
  64  wrong usage of ybpos

Environment: YBPOS_SOCKET (the daemon's socket), NO_COLOR (no colours), TZ (time zone).";

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "ybpos",
    bin_name = "ybpos",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// The daemon's API socket.
    #[arg(
        long,
        global = true,
        env = "YBPOS_SOCKET",
        default_value = "/run/ybpos/api.sock"
    )]
    pub socket: PathBuf,
    /// Print the API's JSON answers instead of text (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// What `ybpos` can do.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// One screen: daemon, gateway, scanners, and what needs a person.
    #[command(visible_alias = "info")]
    Status,
    /// Follow scans, scanners, transactions and the gateway live, one line each.
    #[command(visible_alias = "events")]
    Watch {
        /// Topics: scan, scanner, txn, gateway (default: all).
        #[arg(value_delimiter = ',')]
        topics: Vec<String>,
    },
    /// Wait for the patient's 医保码 on the scanner and show the person.
    Wait {
        /// 用码业务类型: 02121 pharmacy, 01101 registration, 01103 admission, 01301 settlement.
        #[arg(default_value = "02121")]
        business_type: String,
        /// Scanner id (default: the terminal's first).
        #[arg(long)]
        scanner: Option<String>,
        /// Give up after this many seconds (1–120; default the terminal's: 30, a kiosk 20).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=120))]
        timeout: Option<u64>,
    },
    /// Look a patient up without a phone: ID card, social-security card, or a code read elsewhere.
    Lookup(Lookup),
    /// The scanners and their states.
    Scanners,
    /// Transactions: one, a list, or close one that needs a person.
    Txn {
        /// Which.
        #[command(subcommand)]
        cmd: TxnCmd,
    },
    /// Reports.
    Report {
        /// Which.
        #[command(subcommand)]
        cmd: ReportCmd,
    },
    /// Demo only (ybposd --demo): put a test code into the virtual scanner.
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
    /// Any API method with JSON params; prints the JSON answer.
    Call {
        /// Method name, e.g. txn.get.
        method: String,
        /// Params as a JSON object.
        #[arg(default_value = "{}")]
        params: String,
    },
}

/// `ybpos lookup`.
#[derive(Debug, Args)]
#[group(skip)]
#[command(group(
    clap::ArgGroup::new("credential")
        .required(true)
        .multiple(false)
        .args(["qr", "id_card", "ss_card"])
))]
pub struct Lookup {
    /// ID card number (居民身份证).
    #[arg(long)]
    pub id_card: Option<String>,
    /// The name on the ID card.
    #[arg(long, requires = "id_card")]
    pub name: Option<String>,
    /// The ID number was read from the card's chip by a card reader (kiosks need this).
    #[arg(long, requires = "id_card")]
    pub from_card: bool,
    /// Social-security card number (社保卡).
    #[arg(long, requires = "card_sn")]
    pub ss_card: Option<String>,
    /// The social-security card's serial (卡识别码).
    #[arg(long, requires = "ss_card")]
    pub card_sn: Option<String>,
    /// A 医保码 read by a camera or typed.
    #[arg(long)]
    pub qr: Option<String>,
    /// 用码业务类型.
    #[arg(long, default_value = "01101")]
    pub business_type: String,
}

/// `ybpos txn …`.
#[derive(Debug, Subcommand)]
pub enum TxnCmd {
    /// One transaction, with its split, undo and what to do next.
    Get {
        /// A txn_id (txn_…) or the POS's client_ref.
        id: String,
    },
    /// Transactions, newest first.
    List {
        /// Only this state: pending, sent, succeeded, failed, unknown, reversing, reversed, reversal_failed.
        #[arg(long)]
        state: Option<String>,
        /// Created since: a date (2026-12-01), a time (RFC 3339), today, yesterday, or an age (30m, 12h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// Only what a person must close.
        #[arg(long)]
        needs_person: bool,
        /// At most this many (1–1000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=1000))]
        limit: u64,
    },
    /// Close a transaction that needs a person, after checking it on the platform.
    Resolve {
        /// The txn_id (from `ybpos status` or `ybpos txn list --needs-person`).
        txn_id: String,
        /// What the platform shows: the sale went through, did not, or was undone.
        #[arg(long, value_enum)]
        outcome: Outcome,
        /// Who closes it.
        #[arg(long)]
        operator: String,
        /// What was checked (kept with the record).
        #[arg(long)]
        note: String,
    },
}

/// The outcome a person gives a record.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Outcome {
    /// The platform has it: it counts.
    Succeeded,
    /// The platform never had it.
    Failed,
    /// It was undone (refund or reversal seen on the platform).
    Reversed,
}

/// `ybpos report …`.
#[derive(Debug, Subcommand)]
pub enum ReportCmd {
    /// Settlements per day and credential, and the 医保码 share bureaus rank by.
    Usage {
        /// First day (default: the first of this month).
        #[arg(long)]
        from: Option<NaiveDate>,
        /// Last day, inclusive (default: today).
        #[arg(long)]
        to: Option<NaiveDate>,
    },
}

/// Parses the command line; `Err(code)` after printing help, the version
/// or a usage error (exit [`exit::USAGE`]).
pub fn parse() -> Result<Cli, i32> {
    match Cli::try_parse() {
        Ok(c) => Ok(c),
        Err(e) => {
            let _ = e.print();
            Err(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            })
        }
    }
}

/// What went wrong in a command: trouble reaching the daemon, or its error answer.
enum Failure {
    Trouble(Trouble),
    Api(Value),
    Usage(String),
}

impl From<Trouble> for Failure {
    fn from(t: Trouble) -> Self {
        Failure::Trouble(t)
    }
}

type Done = Result<i32, Failure>;

/// Runs the CLI; returns the process exit code.
pub fn main(cli: Cli) -> i32 {
    let json_out = cli.json;
    match run(cli) {
        Ok(code) => code,
        Err(Failure::Trouble(t)) => {
            eprintln!("ybpos: {t}");
            exit::UNREACHABLE
        }
        Err(Failure::Usage(m)) => {
            eprintln!("ybpos: {m}");
            exit::USAGE
        }
        Err(Failure::Api(e)) => {
            if json_out {
                println!("{}", pretty(&json!({"error": e})));
            }
            eprintln!("ybpos: {}", plain(&e));
            match e["code"].as_i64() {
                Some(4001) if e["data"]["reason"] == "uid" => exit::UNREACHABLE,
                Some(5001) => exit::UNREACHABLE,
                _ => exit::WARNING,
            }
        }
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// One call that must succeed.
fn ask(c: &mut Client, method: &str, params: Value) -> Result<Value, Failure> {
    c.call(method, params)?.map_err(Failure::Api)
}

fn connect(cli: &Cli, timeout: Option<Duration>) -> Result<Client, Failure> {
    let mut c = Client::connect(&cli.socket)?;
    c.set_timeout(timeout);
    Ok(c)
}

const QUICK: Option<Duration> = Some(Duration::from_secs(15));

fn run(cli: Cli) -> Done {
    let p = Paint::for_stdout();
    let now = Local::now();
    match &cli.cmd {
        Cmd::Status => status(&cli, p, &now),
        Cmd::Watch { topics } => watch(&cli, topics, p),
        Cmd::Wait {
            business_type,
            scanner,
            timeout,
        } => {
            // The daemon's wait, plus time for decode and 1101.
            let mut c = connect(&cli, timeout.map(|t| Duration::from_secs(t + 90)))?;
            let mut params = json!({"business_type": business_type});
            if let Some(s) = scanner {
                params["scanner"] = json!(s);
            }
            if let Some(t) = timeout {
                params["timeout_ms"] = json!(t * 1000);
            }
            if !cli.json {
                eprintln!(
                    "Waiting for the patient's 医保码 (business type {business_type})… Ctrl-C to stop."
                );
            }
            let r = ask(&mut c, "scan.wait", params)?;
            print_person(&cli, &r, &now);
            Ok(exit::OK)
        }
        Cmd::Lookup(l) => {
            let credential = if let Some(certno) = &l.id_card {
                let mut c = json!({"type": "id_card", "certno": certno});
                if let Some(n) = &l.name {
                    c["psn_name"] = json!(n);
                }
                if l.from_card {
                    c["read_from_card"] = json!(true);
                }
                c
            } else if let Some(card_no) = &l.ss_card {
                json!({"type": "ss_card", "card_no": card_no, "card_sn": l.card_sn})
            } else {
                json!({"type": "qr", "value": l.qr})
            };
            let mut c = connect(&cli, QUICK.map(|t| t * 4))?;
            let r = ask(
                &mut c,
                "identity.lookup",
                json!({"business_type": l.business_type, "credential": credential}),
            )?;
            print_person(&cli, &r, &now);
            Ok(exit::OK)
        }
        Cmd::Scanners => {
            let mut c = connect(&cli, QUICK)?;
            let list = ask(&mut c, "scanner.list", json!({}))?;
            if cli.json {
                println!("{}", pretty(&list));
            } else {
                print!("{}", scanners(&list, &now));
            }
            Ok(exit::OK)
        }
        Cmd::Txn { cmd } => txn(&cli, cmd, p, &now),
        Cmd::Report {
            cmd: ReportCmd::Usage { from, to },
        } => {
            let to = to.unwrap_or_else(|| now.date_naive());
            let from = from.unwrap_or_else(|| {
                NaiveDate::from_ymd_opt(to.year_ce().1 as i32, to.month0() + 1, 1).unwrap_or(to)
            });
            if to < from {
                return Err(Failure::Usage(format!("--to {to} is before --from {from}")));
            }
            let mut c = connect(&cli, QUICK)?;
            let u = ask(
                &mut c,
                "report.usage",
                json!({"from": from.to_string(), "to": to.to_string()}),
            )?;
            if cli.json {
                println!("{}", pretty(&u));
            } else {
                print!("{}", show::usage(&u));
            }
            Ok(exit::OK)
        }
        Cmd::ScanSim { person, kind, text } => {
            let mut c = connect(&cli, QUICK)?;
            let r = ask(
                &mut c,
                "demo.scan",
                json!({"person": person, "kind": kind, "text": text}),
            )?;
            if cli.json {
                println!("{}", pretty(&r));
            } else {
                let who = r["person"]["psn_name"].as_str().unwrap_or("");
                let what = format!("Scanned: {} {who}", r["kind"].as_str().unwrap_or("?"));
                println!("{}", what.trim_end());
            }
            Ok(exit::OK)
        }
        Cmd::Call { method, params } => {
            let params: Value = serde_json::from_str(params)
                .map_err(|e| Failure::Usage(format!("params must be a JSON object: {e}")))?;
            if !params.is_object() {
                return Err(Failure::Usage("params must be a JSON object".into()));
            }
            let mut c = connect(&cli, None)?;
            match c.call(method, params)? {
                Ok(v) => {
                    println!("{}", pretty(&v));
                    Ok(exit::OK)
                }
                Err(e) => {
                    println!("{}", pretty(&json!({"error": e})));
                    eprintln!("ybpos: {}", plain(&e));
                    Ok(exit::WARNING)
                }
            }
        }
    }
}

use chrono::Datelike;

fn print_person(cli: &Cli, r: &Value, now: &DateTime<Local>) {
    if cli.json {
        println!("{}", pretty(r));
    } else {
        print!("{}", show::person(r, now));
    }
}

/// An API error in plain words, with the next step.
pub fn plain(e: &Value) -> String {
    let msg = e["message"].as_str().unwrap_or("");
    let d = &e["data"];
    let s = |k: &str| d[k].as_str().unwrap_or("?").to_string();
    match e["code"].as_i64().unwrap_or(0) {
        1001 => format!(
            "nothing was scanned within {} s: ask the patient to show the 医保码 again and run the command again",
            d["timeout_ms"].as_u64().unwrap_or(0) / 1000
        ),
        1002 => format!(
            "that was a {}, not a 医保码 ({msg}): ask the patient to open the 医保码 (医保电子凭证) in WeChat, Alipay or the 国家医保服务平台 app",
            show::class(d["class"].as_str().unwrap_or(""))
        ),
        1003 => format!(
            "another program is waiting on scanner {}: finish or cancel the sale there first",
            s("scanner")
        ),
        1004 => {
            format!("{msg}: check the scanner's cable; ybpos scanners shows what the daemon sees")
        }
        2001 => format!(
            "the insurance gateway cannot be reached, so nothing was sent: check the network and try again (ybpos status shows the gateway) — {msg}"
        ),
        2002 => format!("the insurance platform said no: {}", s("err_msg")),
        2003 => format!(
            "an earlier attempt of this sale is still being settled or undone: wait for it (ybpos txn get {})",
            s("txn_id")
        ),
        2004 => format!(
            "the platform refused the code: {} — ask the patient to refresh the 医保码 and scan again",
            s("message")
        ),
        3001 => format!(
            "client_ref {} was already used for a different request: use a new one",
            s("client_ref")
        ),
        3002 => "the identity session expired: scan the 医保码 or look the person up again".into(),
        3003 => format!(
            "this sale is already settled by {}: cancel that settlement first (ybpos txn get {})",
            s("txn_id"),
            s("txn_id")
        ),
        4001 => format!("refused: {msg}"),
        5001 => "ybposd is overloaded: try again in a moment".into(),
        -32602 => format!("the daemon did not take a value: {msg}"),
        -32601 => {
            format!("{msg}: this ybposd does not serve it (an older version, or not the demo?)")
        }
        -32603 => format!("the daemon failed: {msg}; journalctl -u ybposd -n 50"),
        _ => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn since_takes_what_people_type() {
        let now = Local.with_ymd_and_hms(2026, 12, 5, 10, 0, 0).unwrap();
        assert_eq!(since("2026-12-01", &now).unwrap(), "2026-12-01");
        assert!(
            since("today", &now)
                .unwrap()
                .starts_with("2026-12-05T00:00:00")
        );
        assert!(
            since("yesterday", &now)
                .unwrap()
                .starts_with("2026-12-04T00:00:00")
        );
        assert!(
            since("12h", &now)
                .unwrap()
                .starts_with("2026-12-04T22:00:00")
        );
        assert!(
            since("30m", &now)
                .unwrap()
                .starts_with("2026-12-05T09:30:00")
        );
        assert!(
            since("7d", &now)
                .unwrap()
                .starts_with("2026-11-28T10:00:00")
        );
        let t = "2026-12-01T08:00:00+08:00";
        assert_eq!(since(t, &now).unwrap(), t);
        for bad in [
            "soon",
            "12x",
            "h",
            "2026-13-01",
            "99999999999999999999d",
            "",
        ] {
            assert!(since(bad, &now).is_err(), "{bad}");
        }
    }

    #[test]
    fn events_are_one_line_with_the_code_masked() {
        let now = Local::now();
        let p = Paint { on: false };
        let l = event_line(
            &json!({"topic": "scan", "scanner": "counter", "class": "wechat_pay", "text": "134567890123456789", "at": now.to_rfc3339()}),
            p,
            &now,
        );
        assert!(
            l.contains("scan     counter   WeChat Pay code  1345**********6789 (18 chars)"),
            "{l}"
        );
        assert!(l.contains("ask for the 医保码"), "{l}");
        assert!(!l.contains("134567890123456789"));
        let l = event_line(
            &json!({"topic": "txn", "txn_id": "txn_1", "client_ref": "A", "infno": "2102", "state": "succeeded"}),
            p,
            &now,
        );
        assert!(l.ends_with("txn      2102  A  → succeeded   txn_1"), "{l}");
        assert!(!l.contains('\n'));
    }

    #[test]
    fn errors_say_what_to_do_next() {
        let e = json!({"code": 1001, "message": "x", "data": {"kind": "scan_timeout", "timeout_ms": 30000}});
        assert!(plain(&e).starts_with("nothing was scanned within 30 s: ask the patient"));
        let e = json!({"code": 3003, "message": "x", "data": {"kind": "already_settled", "txn_id": "txn_9"}});
        assert!(plain(&e).contains("ybpos txn get txn_9"));
        let t = Trouble::NotRunning("/run/ybpos/api.sock".into()).to_string();
        assert!(t.starts_with("the daemon is not running"), "{t}");
        assert!(t.contains("systemctl status ybposd"), "{t}");
    }
}
