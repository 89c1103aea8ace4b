//! `ybpos watch`: live scans and transaction state changes, one line each.

use super::*;

/// `ybpos watch`: one line per event until Ctrl-C.
pub(super) fn watch(cli: &Cli, topics: &[String], p: Paint) -> Done {
    let mut c = connect(cli, QUICK)?;
    let params = if topics.is_empty() {
        json!({})
    } else {
        json!({"topics": topics})
    };
    ask(&mut c, "events.subscribe", params)?;
    c.set_timeout(None);
    if !cli.json {
        eprintln!(
            "Watching ybposd ({}); Ctrl-C to stop.",
            cli.socket.display()
        );
    }
    loop {
        let m = c.read()?;
        if m.get("method").and_then(Value::as_str) != Some("event") {
            continue;
        }
        let ev = &m["params"];
        if cli.json {
            println!("{ev}");
        } else {
            println!("{}", event_line(ev, p, &Local::now()));
        }
    }
}

/// One event as one line: local time, topic, what happened (scanned text masked).
pub fn event_line(ev: &Value, p: Paint, now: &DateTime<Local>) -> String {
    let at = ev["at"]
        .as_str()
        .and_then(show::local)
        .unwrap_or(*now)
        .format("%H:%M:%S")
        .to_string();
    let topic = ev["topic"].as_str().unwrap_or("?");
    let what = match topic {
        "scan" => {
            let class = ev["class"].as_str().unwrap_or("other");
            let text = ev["text"].as_str().unwrap_or("");
            let label = match class {
                "medical_code" => p.good(show::class(class)),
                "other" => p.dim("not a code"),
                c => p.warn(show::class(c)),
            };
            let hint = if class != "medical_code" && class != "other" {
                " — a payment code: ask for the 医保码"
            } else {
                ""
            };
            format!(
                "{}  {label}  {} ({} chars){hint}",
                show::pad(ev["scanner"].as_str().unwrap_or("?"), 8),
                mask(text),
                text.chars().count()
            )
        }
        "scanner" => {
            let mut s = format!(
                "{}  {}",
                show::pad(ev["scanner"].as_str().unwrap_or("?"), 8),
                p.state(ev["state"].as_str().unwrap_or("?"))
            );
            if let Some(e) = ev["error"].as_str() {
                s.push_str(&format!(": {e}"));
            }
            s
        }
        "txn" => format!(
            "{}  {}  → {}   {}",
            ev["infno"].as_str().unwrap_or("?"),
            ev["client_ref"].as_str().unwrap_or("?"),
            p.state(ev["state"].as_str().unwrap_or("?")),
            p.dim(ev["txn_id"].as_str().unwrap_or(""))
        ),
        "gateway" => {
            let st = ev["state"].as_str().unwrap_or("?");
            match (st, ev["reason"].as_str()) {
                ("online", _) => format!("{} (signed in)", p.state(st)),
                (_, Some(r)) => format!("{}: {r}", p.state(st)),
                _ => p.state(st),
            }
        }
        "lagged" => p.warn(&format!(
            "missed {} events (this terminal was too slow)",
            ev["missed"]
        )),
        _ => ev.to_string(),
    };
    format!("{at}  {}  {what}", show::pad(topic, 7))
}
