//! Human output: local times, "ago", masked ID numbers, tables that line
//! up with Chinese text, the person block, records, and colour on a TTY.

use chrono::{DateTime, Local};
use serde_json::Value;
use settlement_client::redact::mask;

/// Colours: on only when writing to a terminal and `NO_COLOR` is unset.
#[derive(Debug, Clone, Copy)]
pub struct Paint {
    /// Whether to emit ANSI colour codes.
    pub on: bool,
}

impl Paint {
    /// Colour for stdout, as the environment allows.
    pub fn for_stdout() -> Paint {
        use std::io::IsTerminal;
        Paint {
            on: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    fn wrap(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    /// Good news.
    pub fn good(&self, s: &str) -> String {
        self.wrap("32", s)
    }
    /// Something to watch.
    pub fn warn(&self, s: &str) -> String {
        self.wrap("33", s)
    }
    /// Something wrong.
    pub fn bad(&self, s: &str) -> String {
        self.wrap("1;31", s)
    }
    /// Less important.
    pub fn dim(&self, s: &str) -> String {
        self.wrap("2", s)
    }
    /// A word by what it means: states of records, scanners and the gateway.
    pub fn state(&self, s: &str) -> String {
        match s {
            "succeeded" | "connected" | "online" | "reversed" | "medical_code" => self.good(s),
            "failed" | "reversal_failed" | "absent" | "error" | "offline" => self.bad(s),
            _ => self.warn(s),
        }
    }
}

/// An RFC 3339 time from the daemon, in this machine's time zone.
pub fn local(t: &str) -> Option<DateTime<Local>> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Local))
}

/// `2026-12-05 10:02:11` (local), or the text as it came.
pub fn time(t: &Value) -> String {
    match t.as_str() {
        Some(s) => local(s).map_or_else(
            || s.to_string(),
            |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
        ),
        None => "—".into(),
    }
}

/// `10:02:11` for today, else `12-04 10:02`.
pub fn short_time(t: &DateTime<Local>, now: &DateTime<Local>) -> String {
    if t.date_naive() == now.date_naive() {
        t.format("%H:%M:%S").to_string()
    } else {
        t.format("%m-%d %H:%M").to_string()
    }
}

/// `12 s ago`, `3 min ago`, `2 h 13 min ago`, `3 days ago`.
pub fn ago(t: &DateTime<Local>, now: &DateTime<Local>) -> String {
    let s = (*now - *t).num_seconds();
    if s < 0 {
        return "just now".into();
    }
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => match (s % 3600) / 60 {
            0 => format!("{} h ago", s / 3600),
            m => format!("{} h {m} min ago", s / 3600),
        },
        _ => match s / 86_400 {
            1 => "1 day ago".into(),
            d => format!("{d} days ago"),
        },
    }
}

/// Columns a string takes on a terminal (CJK and full-width forms take two).
pub fn width(s: &str) -> usize {
    s.chars()
        .map(|c| match c as u32 {
            0x1100..=0x115F
            | 0x2E80..=0x303E
            | 0x3041..=0x33FF
            | 0x3400..=0x4DBF
            | 0x4E00..=0x9FFF
            | 0xA000..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6
            | 0x20000..=0x3FFFD => 2,
            _ => 1,
        })
        .sum()
}

/// `s` padded with spaces to `w` columns.
pub fn pad(s: &str, w: usize) -> String {
    let n = width(s);
    format!("{s}{}", " ".repeat(w.saturating_sub(n)))
}

/// A table: a header row and rows, columns lined up; `right` columns are
/// aligned right (numbers).
pub fn table(head: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    let mut w: Vec<usize> = head.iter().map(|h| width(h)).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(width(c));
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            let cell = if right.contains(&i) {
                format!("{}{c}", " ".repeat(w[i].saturating_sub(width(c))))
            } else if i + 1 == cells.len() {
                c.to_string()
            } else {
                pad(c, w[i])
            };
            out.push_str(&cell);
            if i + 1 < cells.len() {
                out.push_str("  ");
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(head.to_vec());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// A masked ID number or token (`4201**********1234`).
pub fn masked(v: &Value) -> String {
    v.as_str().map_or_else(|| "—".into(), mask)
}

/// Money as the gateway sent it (never through a float).
pub fn money(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => "—".into(),
    }
}

/// What a `mdtrt_cert_type` is.
pub fn cert_type(t: &str) -> &'static str {
    match t {
        "01" => "医保码 (ecToken)",
        "02" => "ID card (居民身份证)",
        "03" => "social-security card (社保卡)",
        _ => "credential",
    }
}

/// The name of an `insutype` (险种).
pub fn insutype(t: &str) -> &'static str {
    match t {
        "310" => "职工基本医疗保险",
        "320" => "公务员医疗补助",
        "330" => "大额医疗费用补助",
        "340" => "离休人员医疗保障",
        "390" => "城乡居民基本医疗保险",
        "392" => "城乡居民大病医疗保险",
        "510" => "生育保险",
        _ => "",
    }
}

/// What a payment-code class is, for people.
pub fn class(c: &str) -> &'static str {
    match c {
        "medical_code" => "医保码",
        "wechat_pay" => "WeChat Pay code",
        "alipay" => "Alipay code",
        "unionpay" => "UnionPay code",
        _ => "other",
    }
}

/// The person of an identity result, as a short block for the cashier:
/// name, masked ID, insurance, balance, credential and session.
pub fn person(r: &Value, now: &DateTime<Local>) -> String {
    let b = &r["person"]["baseinfo"];
    let mut out = String::new();
    let name = b["psn_name"].as_str().unwrap_or("?");
    let gend = match b["gend"].as_str() {
        Some("1") => "男",
        Some("2") => "女",
        _ => "",
    };
    let age = b["age"]
        .as_u64()
        .map(|a| format!("{a} 岁"))
        .unwrap_or_default();
    let extra: Vec<&str> = [gend, age.as_str()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    out.push_str(&format!("{name}   {}\n", extra.join(" · ")));
    out.push_str(&format!(
        "ID          {}   psn_no {}\n",
        masked(&b["certno"]),
        b["psn_no"].as_str().unwrap_or("—")
    ));
    for i in r["person"]["insuinfo"].as_array().into_iter().flatten() {
        let t = i["insutype"].as_str().unwrap_or("");
        let mut line = format!("Insurance   {t} {}", insutype(t));
        if let Some(a) = i["insuplc_admdvs"].as_str() {
            line.push_str(&format!(" · insured in {a}"));
        }
        if let Some(e) = i["emp_name"].as_str().filter(|e| !e.is_empty()) {
            line.push_str(&format!(" · {e}"));
        }
        out.push_str(&line);
        out.push('\n');
        out.push_str(&format!(
            "Balance     {} (personal account)\n",
            money(&i["balc"])
        ));
    }
    let c = &r["credential"];
    let expires = r["expires_at"]
        .as_str()
        .and_then(local)
        .map(|t| format!("valid until {}", short_time(&t, now)))
        .unwrap_or_default();
    out.push_str(&format!(
        "Credential  {}\n",
        cert_type(c["mdtrt_cert_type"].as_str().unwrap_or(""))
    ));
    out.push_str(&format!(
        "Session     {} {expires}\n",
        r["session_id"].as_str().unwrap_or("—")
    ));
    out
}

/// The settlement split of a record's `setlinfo`, when it has one.
pub fn split(setl: &Value) -> Option<String> {
    setl.get("medfee_sumamt")?;
    Some(format!(
        "total {} = fund {} + account {} + cash {}   (balance after: {})",
        money(&setl["medfee_sumamt"]),
        money(&setl["fund_pay_sumamt"]),
        money(&setl["acct_pay"]),
        money(&setl["psn_cash_pay"]),
        money(&setl["balc"]),
    ))
}

/// What a person should do about a record in this state.
pub fn next_step(r: &Value) -> Option<String> {
    let id = r["txn_id"].as_str().unwrap_or("TXN");
    match r["state"].as_str()? {
        "reversal_failed" => Some(format!(
            "Needs a person: check this transaction on the platform (or call the bureau), then close it:\n  \
             ybpos txn resolve {id} --outcome succeeded|failed|reversed --operator NAME --note \"what you checked\""
        )),
        "unknown" | "reversing" | "sent" | "pending" => Some(format!(
            "The daemon is finding out whether the gateway has it and undoes it if so; follow it with: ybpos txn get {id}"
        )),
        "failed" => Some("Nothing was charged. Fix what the gateway said and submit again.".into()),
        _ => None,
    }
}

/// One record, as a block.
pub fn record(r: &Value, p: Paint) -> String {
    let mut out = String::new();
    let state = r["state"].as_str().unwrap_or("?");
    out.push_str(&format!(
        "{}  {}  {}  {}\n",
        r["txn_id"].as_str().unwrap_or("?"),
        r["infno"].as_str().unwrap_or("?"),
        r["client_ref"].as_str().unwrap_or("?"),
        p.state(state)
    ));
    out.push_str(&format!(
        "created {}   updated {}   msgid {}   sent {} time(s)\n",
        time(&r["created_at"]),
        time(&r["updated_at"]),
        r["msgid"].as_str().unwrap_or("—"),
        r["attempts"].as_u64().unwrap_or(0)
    ));
    let setl = &r["output"]["setlinfo"];
    if let Some(s) = split(setl) {
        out.push_str(&format!("Split       {s}\n"));
        if let Some(id) = setl["setl_id"].as_str().filter(|s| !s.is_empty()) {
            out.push_str(&format!(
                "Settlement  setl_id {id}   mdtrt_id {}\n",
                setl["mdtrt_id"].as_str().unwrap_or("—")
            ));
        }
    }
    let e = &r["error"];
    if !e.is_null() {
        let what = e["err_msg"].as_str().or(e["reason"].as_str()).unwrap_or("");
        out.push_str(&format!(
            "Problem     {} {what}\n",
            e["kind"].as_str().unwrap_or("")
        ));
    }
    let rv = &r["reversal"];
    if !rv.is_null() {
        out.push_str(&format!(
            "Undo        {} {} ({} attempt(s), msgid {})\n",
            rv["infno"].as_str().unwrap_or(""),
            rv["state"].as_str().unwrap_or(""),
            rv["attempts"].as_u64().unwrap_or(0),
            rv["msgid"].as_str().unwrap_or("")
        ));
    }
    let res = &r["resolution"];
    if res.is_object() {
        out.push_str(&format!(
            "Closed by   {} at {} as {}: {}\n",
            res["operator"].as_str().unwrap_or("?"),
            time(&res["at"]),
            res["outcome"].as_str().unwrap_or("?"),
            res["note"].as_str().unwrap_or("")
        ));
    }
    if let Some(n) = next_step(r) {
        out.push_str(&n);
        out.push('\n');
    }
    out
}

/// Records as a table, newest first as the daemon lists them.
pub fn records(list: &[Value], p: Paint) -> String {
    if list.is_empty() {
        return "No transactions.\n".into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            vec![
                time(&r["created_at"]),
                r["txn_id"].as_str().unwrap_or("?").to_string(),
                r["infno"].as_str().unwrap_or("?").to_string(),
                r["client_ref"].as_str().unwrap_or("?").to_string(),
                r["state"].as_str().unwrap_or("?").to_string(),
                r["output"]["setlinfo"]
                    .get("medfee_sumamt")
                    .map(money)
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let t = table(
        &["CREATED", "TXN", "INFNO", "CLIENT_REF", "STATE", "AMOUNT"],
        &rows,
        &[5],
    );
    if !p.on {
        return t;
    }
    // Colour the state column after lining up (escape codes take no room).
    t.lines()
        .enumerate()
        .map(|(i, l)| {
            let mut l = l.to_string();
            if i > 0
                && let Some(s) = list[i - 1]["state"].as_str()
            {
                l = l.replacen(&format!("  {s}"), &format!("  {}", p.state(s)), 1);
            }
            l + "\n"
        })
        .collect()
}

/// `report.usage` as a table per day with the 医保码 share.
pub fn usage(u: &Value) -> String {
    let pct = |n: u64, d: u64| {
        if d == 0 {
            "—".to_string()
        } else {
            format!("{:.1}%", n as f64 * 100.0 / d as f64)
        }
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    let (mut total, mut mc) = (0, 0);
    for d in u["by_day"].as_array().into_iter().flatten() {
        let t = d["total"].as_u64().unwrap_or(0);
        let m = d["medical_code"].as_u64().unwrap_or(0);
        total += t;
        mc += m;
        rows.push(vec![
            d["date"].as_str().unwrap_or("?").to_string(),
            t.to_string(),
            m.to_string(),
            pct(m, t),
        ]);
    }
    rows.push(vec![
        "total".into(),
        total.to_string(),
        mc.to_string(),
        pct(mc, total),
    ]);
    let by = &u["settlements"]["by_cert_type"];
    format!(
        "Settlements {} – {} (net of cancels)\n{}By credential: 医保码 (01) {} · ID card (02) {} · social-security card (03) {}\n医保码 share: {}\n",
        u["from"].as_str().unwrap_or("?"),
        u["to"].as_str().unwrap_or("?"),
        table(&["DATE", "SETTLED", "医保码", "SHARE"], &rows, &[1, 2, 3]),
        by["01"],
        by["02"],
        by["03"],
        pct(mc, total)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn ago_reads_like_a_person_says_it() {
        let now = Local.with_ymd_and_hms(2026, 12, 5, 10, 0, 0).unwrap();
        let at = |s| now - chrono::Duration::seconds(s);
        assert_eq!(ago(&at(12), &now), "12 s ago");
        assert_eq!(ago(&at(185), &now), "3 min ago");
        assert_eq!(ago(&at(7980), &now), "2 h 13 min ago");
        assert_eq!(ago(&at(7200), &now), "2 h ago");
        assert_eq!(ago(&at(86_400 * 3), &now), "3 days ago");
        assert_eq!(ago(&at(-5), &now), "just now");
    }

    #[test]
    fn tables_line_up_with_chinese_text() {
        assert_eq!(width("张三"), 4);
        assert_eq!(width("a医保码b"), 8);
        let t = table(
            &["NAME", "N"],
            &[
                vec!["张三".into(), "1".into()],
                vec!["Li".into(), "10".into()],
            ],
            &[1],
        );
        assert_eq!(t, "NAME   N\n张三   1\nLi    10\n");
    }

    #[test]
    fn the_person_block_masks_the_id_number() {
        let now = Local::now();
        let mut r = json!({
            "session_id": "ses_1", "expires_at": now.to_rfc3339(),
            "credential": {"mdtrt_cert_type": "01", "mdtrt_cert_no": "421381ecabcdefabcdefabcdefabcdefabcdef"},
            "person": {"baseinfo": {"psn_no": "42000000000000000001", "psn_name": "张三", "certno": "421381198001011239", "gend": "1", "age": 46},
                       "insuinfo": [{"insutype": "310", "insuplc_admdvs": "421381", "emp_name": ""}]}
        });
        // Money arrives as the gateway's text (arbitrary precision), as on the wire.
        r["person"]["insuinfo"][0]["balc"] = serde_json::from_str("1000.00").unwrap();
        let b = person(&r, &now);
        assert!(b.starts_with("张三   男 · 46 岁\n"), "{b}");
        assert!(b.contains("4213**********1239"), "{b}");
        assert!(!b.contains("421381198001011239"), "{b}");
        assert!(!b.contains("abcdefabcdef"), "the ecToken is not shown: {b}");
        assert!(b.contains("310 职工基本医疗保险"), "{b}");
        assert!(b.contains("Balance     1000.00"), "{b}");
    }

    #[test]
    fn times_are_shown_in_the_local_zone() {
        let t = local("2026-12-05T02:00:00+00:00").unwrap();
        assert_eq!(
            t.with_timezone(&chrono::Utc).to_rfc3339(),
            "2026-12-05T02:00:00+00:00"
        );
        assert_eq!(time(&json!("not a time")), "not a time");
        assert_eq!(time(&Value::Null), "—");
    }

    #[test]
    fn a_record_that_needs_a_person_says_how_to_close_it() {
        let r = json!({"txn_id": "txn_1", "infno": "2403", "client_ref": "A", "state": "reversal_failed",
                       "created_at": "2026-12-05T10:00:00+08:00", "updated_at": "2026-12-05T10:00:01+08:00",
                       "msgid": "M", "attempts": 1, "output": null, "reversal": null,
                       "error": {"kind": "outcome_unknown", "reason": "reset"}});
        let s = record(&r, Paint { on: false });
        assert!(s.contains("ybpos txn resolve txn_1 --outcome"), "{s}");
        assert!(s.contains("Problem     outcome_unknown reset"), "{s}");
    }

    #[test]
    fn usage_shows_the_share_per_day() {
        let u = json!({"from": "2026-12-01", "to": "2026-12-05",
            "settlements": {"total": 3, "by_cert_type": {"01": 2, "02": 1, "03": 0}}, "medical_code_rate": 0.6667,
            "by_day": [{"date": "2026-12-04", "total": 1, "medical_code": 0}, {"date": "2026-12-05", "total": 2, "medical_code": 2}]});
        let s = usage(&u);
        assert!(s.contains("2026-12-05        2       2  100.0%"), "{s}");
        assert!(s.contains("total             3       2   66.7%"), "{s}");
    }
}
