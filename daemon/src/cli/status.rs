//! `ybpos status` (one screen, exit codes for monitoring) and `ybpos scanners`.

use super::*;

pub(super) fn scanners(list: &Value, now: &DateTime<Local>) -> String {
    let rows: Vec<Vec<String>> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let last = s["last_scan_at"]
                .as_str()
                .and_then(show::local)
                .map_or_else(|| "never".into(), |t| show::ago(&t, now));
            let mut state = s["state"].as_str().unwrap_or("?").to_string();
            if let Some(e) = s["error"].as_str() {
                state = format!("{state}: {e}");
            }
            if s["armed"] == true {
                state.push_str(" (a wait holds it)");
            }
            vec![
                s["id"].as_str().unwrap_or("?").to_string(),
                s["transport"].as_str().unwrap_or("?").to_string(),
                state,
                format!("{} · {} scans", last, s["scans"]),
                s["path"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    show::table(
        &["SCANNER", "TRANSPORT", "STATE", "LAST SCAN", "DEVICE"],
        &rows,
        &[],
    )
}

/// `ybpos status`: one screen, and an exit code for monitoring.
pub(super) fn status(cli: &Cli, p: Paint, now: &DateTime<Local>) -> Done {
    let mut c = connect(cli, QUICK)?;
    let info = ask(&mut c, "system.info", json!({}))?;
    let open = ask(
        &mut c,
        "txn.list",
        json!({"needs_person": true, "limit": 1000}),
    )?;
    let open = open.as_array().cloned().unwrap_or_default();
    let mut warnings: Vec<String> = Vec::new();
    let g = &info["gateway"];
    let gstate = g["state"].as_str().unwrap_or("?");
    if gstate != "online" {
        warnings.push(format!(
            "the gateway is {gstate}: sales cannot be settled; check the network to the insurance gateway"
        ));
    }
    for s in info["scanners"].as_array().into_iter().flatten() {
        let st = s["state"].as_str().unwrap_or("?");
        if st != "connected" {
            warnings.push(format!(
                "scanner {} is {st}: check its cable (ybpos scanners)",
                s["id"].as_str().unwrap_or("?")
            ));
        }
    }
    let j = &info["journal"];
    if let Some(e) = j["error"].as_str() {
        warnings.push(format!(
            "the journal cannot be read: {e}; journalctl -u ybposd"
        ));
    }
    let stale = j["stale"].as_u64().unwrap_or(0);
    if stale > 0 {
        warnings.push(format!(
            "{stale} transaction(s) have been resolving for long: ybpos txn list --state unknown"
        ));
    }
    let code = if !open.is_empty() {
        exit::NEEDS_PERSON
    } else if !warnings.is_empty() {
        exit::WARNING
    } else {
        exit::OK
    };
    if cli.json {
        println!(
            "{}",
            pretty(
                &json!({"info": info, "needs_person": open, "warnings": warnings, "exit": code})
            )
        );
        return Ok(code);
    }
    let t = &info["terminal"];
    println!(
        "ybposd {} (API {}) · {} {} · operator {}",
        info["version"].as_str().unwrap_or("?"),
        info["api"].as_str().unwrap_or("?"),
        t["fixmedins_name"].as_str().unwrap_or("?"),
        t["fixmedins_code"].as_str().unwrap_or("?"),
        t["opter"].as_str().unwrap_or("?"),
    );
    let since = g["signed_in_at"]
        .as_str()
        .and_then(show::local)
        .map(|t| {
            format!(
                " · signed in {} ({})",
                show::short_time(&t, now),
                show::ago(&t, now)
            )
        })
        .unwrap_or_default();
    println!(
        "Gateway   {}{since} · {}, auth {}",
        p.state(gstate),
        g["profile"].as_str().unwrap_or("?"),
        g["auth"].as_str().unwrap_or("?")
    );
    for (i, s) in info["scanners"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let last = s["last_scan_at"]
            .as_str()
            .and_then(show::local)
            .map_or_else(
                || "no scan yet".into(),
                |t| format!("last scan {}", show::ago(&t, now)),
            );
        println!(
            "{} {} {} {} · {last} · {} scans",
            if i == 0 { "Scanners " } else { "         " },
            show::pad(s["id"].as_str().unwrap_or("?"), 10),
            show::pad(s["transport"].as_str().unwrap_or("?"), 12),
            p.state(s["state"].as_str().unwrap_or("?")),
            s["scans"]
        );
    }
    if info["scanners"].as_array().is_none_or(|a| a.is_empty()) {
        println!("Scanners  none configured");
    }
    if j["error"].is_null() {
        let unresolved = j["unresolved"].as_u64().unwrap_or(0);
        println!(
            "Journal   {} · {} being resolved by the daemon · {} need a person",
            j["path"].as_str().unwrap_or("?"),
            unresolved,
            j["reversal_failed"].as_u64().unwrap_or(open.len() as u64)
        );
    }
    if !open.is_empty() {
        println!();
        println!("{}", p.bad(&format!("Needs a person ({}):", open.len())));
        for r in &open {
            let problem = r["error"]["err_msg"]
                .as_str()
                .or(r["error"]["reason"].as_str())
                .unwrap_or("");
            println!(
                "  {}  {}  {}  since {}",
                r["txn_id"].as_str().unwrap_or("?"),
                r["infno"].as_str().unwrap_or("?"),
                r["client_ref"].as_str().unwrap_or("?"),
                show::time(&r["updated_at"])
            );
            if !problem.is_empty() {
                println!("    {}", p.dim(problem));
            }
            println!(
                "    ybpos txn resolve {} --outcome succeeded|failed|reversed --operator NAME --note \"what you checked\"",
                r["txn_id"].as_str().unwrap_or("TXN_ID")
            );
        }
        println!(
            "  The daemon could not tell whether the platform has these. Check each on the platform\n  \
             (or with the bureau), then close it with the command under it."
        );
    }
    println!();
    match code {
        exit::OK => println!("{}", p.good("OK: all well.")),
        exit::WARNING => {
            for w in &warnings {
                println!("{} {w}", p.warn("WARNING:"));
            }
        }
        _ => {
            for w in &warnings {
                println!("{} {w}", p.warn("WARNING:"));
            }
            println!(
                "{} {} transaction(s) need a person (see above).",
                p.bad("NEEDS A PERSON:"),
                open.len()
            );
        }
    }
    Ok(code)
}
