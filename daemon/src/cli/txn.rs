//! `ybpos txn get|list|resolve`, and `--since` in plain words.

use super::*;

/// `since` for `txn.list`: today, yesterday, 30m / 12h / 7d, a date or RFC 3339.
pub fn since(s: &str, now: &DateTime<Local>) -> Result<String, String> {
    let midnight = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .and_then(|t| t.and_local_timezone(Local).earliest())
            .map(|t| t.to_rfc3339())
            .ok_or_else(|| format!("no local midnight on {d}"))
    };
    match s {
        "today" => return midnight(now.date_naive()),
        "yesterday" => return midnight(now.date_naive() - chrono::Duration::days(1)),
        _ => {}
    }
    if let Some((n, unit)) = s
        .char_indices()
        .last()
        .map(|(i, u)| (&s[..i], u))
        .filter(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    {
        let n: i64 = n.parse().map_err(|_| format!("--since {s}: too large"))?;
        let d = match unit {
            'm' => chrono::Duration::try_minutes(n),
            'h' => chrono::Duration::try_hours(n),
            'd' => chrono::Duration::try_days(n),
            _ => None,
        };
        if let Some(d) = d {
            return Ok((*now - d).to_rfc3339());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.to_string());
    }
    if DateTime::parse_from_rfc3339(s).is_ok() {
        return Ok(s.to_string());
    }
    Err(format!(
        "--since {s:?}: give a date (2026-12-01), a time (2026-12-01T08:00:00+08:00), today, yesterday, or an age (30m, 12h, 7d)"
    ))
}

pub(super) fn txn(cli: &Cli, cmd: &TxnCmd, p: Paint, now: &DateTime<Local>) -> Done {
    match cmd {
        TxnCmd::Get { id } => {
            let key = if id.starts_with("txn_") {
                json!({"txn_id": id})
            } else {
                json!({"client_ref": id})
            };
            let mut c = connect(cli, QUICK)?;
            let r = ask(&mut c, "txn.get", key)?;
            if cli.json {
                println!("{}", pretty(&r));
            } else {
                print!("{}", show::record(&r, p));
            }
            Ok(exit::OK)
        }
        TxnCmd::List {
            state,
            since: since_text,
            needs_person,
            limit,
        } => {
            let mut params = json!({"limit": limit});
            if let Some(s) = state {
                params["state"] = json!(s);
            }
            if let Some(s) = since_text {
                params["since"] = json!(since(s, now).map_err(Failure::Usage)?);
            }
            if *needs_person {
                params["needs_person"] = json!(true);
            }
            let mut c = connect(cli, QUICK)?;
            let list = ask(&mut c, "txn.list", params)?;
            if cli.json {
                println!("{}", pretty(&list));
            } else {
                let list = list.as_array().cloned().unwrap_or_default();
                if list.is_empty() && *needs_person {
                    println!("Nothing needs a person.");
                } else {
                    print!("{}", show::records(&list, p));
                }
            }
            Ok(exit::OK)
        }
        TxnCmd::Resolve {
            txn_id,
            outcome,
            operator,
            note,
        } => {
            let outcome = match outcome {
                Outcome::Succeeded => "succeeded",
                Outcome::Failed => "failed",
                Outcome::Reversed => "reversed",
            };
            let mut c = connect(cli, QUICK)?;
            let r = ask(
                &mut c,
                "txn.resolve",
                json!({"txn_id": txn_id, "outcome": outcome, "operator": operator, "note": note}),
            )?;
            if cli.json {
                println!("{}", pretty(&r));
            } else {
                println!("Closed {txn_id} as {outcome}.");
                print!("{}", show::record(&r, p));
            }
            Ok(exit::OK)
        }
    }
}
