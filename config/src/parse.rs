//! Turns a parsed TOML table into a validated [`Config`], collecting every problem.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::{Table, Value};

use crate::model::*;
use crate::reader::{Problems, Section};

/// Largest frame a scanner may send by default (scanners.md §3.2).
pub const DEFAULT_MAX_FRAME: u64 = 4096;
/// Default quiet gap (`continued_timeout_ms`) after which a HID-POS scan
/// held by a Continued bit on a full final report is delivered: 50 ms is
/// about 6× the slowest USB poll interval between the reports of one scan
/// (1–8 ms) and about 6× below the shortest time between two scans by a
/// person (~300 ms), so neither a real continuation nor the next scan is
/// mistaken for the other.
pub const DEFAULT_CONTINUED_TIMEOUT_MS: u64 = 50;
/// The range accepted for `continued_timeout_ms`: above the poll interval
/// of any USB scanner, below the time between two scans by a person.
pub const CONTINUED_TIMEOUT_RANGE_MS: std::ops::RangeInclusive<u64> = 10..=250;
/// Default request line / body limit of the local API (local-api.md, Limits).
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 1 << 20;
/// Default connection cap per transport (local-api.md, Limits).
pub const DEFAULT_MAX_CONNECTIONS: u64 = 256;
/// Default idle close of API connections (local-api.md, Limits).
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 10 * 60 * 1000;
/// Default `scan.wait` of a self-service kiosk (`[kiosk] scan_wait_ms`):
/// shorter than a counter's 30 s, since the patient stands at the screen and
/// the page should fall back to its start screen soon after they walk away.
pub const DEFAULT_KIOSK_SCAN_WAIT_MS: u64 = 20_000;
/// Default identity-session lifetime (local-api.md, Identity result).
pub const DEFAULT_SESSION_TTL_MS: u64 = 10 * 60 * 1000;
/// Default cap on a gateway response body.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 4 << 20;

pub(crate) fn config(file: &Path, root: &Table, p: &mut Problems) -> Option<Config> {
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut top = Section::new(file, "", Some(root));

    let terminal_t = top.table(p, "terminal");
    let gateway_t = top.table(p, "gateway");
    let api_t = top.table(p, "api");
    let journal_t = top.table(p, "journal");
    let codes_t = top.table(p, "codes");
    let session_t = top.table(p, "session");
    let log_t = top.table(p, "log");
    let kiosk_t = top.table(p, "kiosk");
    let scanners_v = scanner_tables(file, root, p);
    top.mark_used("scanner");
    top.finish(p);

    if terminal_t.is_none() {
        p.push(
            file,
            "terminal",
            "section [terminal] is required but missing",
        );
    }
    if gateway_t.is_none() {
        p.push(file, "gateway", "section [gateway] is required but missing");
    }

    let terminal = terminal(file, terminal_t, p);
    let gateway = gateway(file, &dir, gateway_t, terminal.as_ref(), p);
    let mut scanners = Vec::new();
    let mut unbound_pos = 0;
    for (i, t) in scanners_v.iter().enumerate() {
        if let Some(s) = scanner(file, &dir, i, t, p) {
            if scanners.iter().any(|o: &Scanner| o.id == s.id) {
                p.push(
                    file,
                    format!("scanner[{i}].id"),
                    format!("duplicate scanner id {:?}", s.id),
                );
            }
            if s.transport == ScannerTransport::HidPos && !s.is_bound() {
                unbound_pos += 1;
                if unbound_pos > 1 {
                    p.push(
                        file,
                        format!("scanner[{i}].usb"),
                        "more than one hid-pos scanner takes any device: bind each with \
                         usb, serial_number or port_path",
                    );
                }
            }
            scanners.push(s);
        }
    }
    let api = api(file, &dir, api_t, p);
    let journal = journal(file, &dir, journal_t, p);
    let codes = codes(file, codes_t, p);
    let session = session(file, session_t, p);
    let log = log(file, log_t, p);
    let kiosk = kiosk(file, kiosk_t, terminal.as_ref(), p);

    Some(Config {
        source: file.to_path_buf(),
        terminal: terminal?,
        gateway: gateway?,
        scanners,
        api: api?,
        journal,
        codes: codes?,
        session,
        log,
        kiosk,
    })
}

fn scanner_tables<'a>(file: &Path, root: &'a Table, p: &mut Problems) -> Vec<&'a Table> {
    match root.get("scanner") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| match v {
                Value::Table(t) => Some(t),
                _ => {
                    p.push(
                        file,
                        format!("scanner[{i}]"),
                        "expected a [[scanner]] table",
                    );
                    None
                }
            })
            .collect(),
        Some(_) => {
            p.push(file, "scanner", "expected [[scanner]] tables");
            Vec::new()
        }
    }
}

fn resolve(dir: &Path, s: &str) -> PathBuf {
    let path = PathBuf::from(s);
    if path.is_absolute() {
        path
    } else {
        dir.join(path)
    }
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn check_digits(s: &mut Section<'_>, p: &mut Problems, key: &str, v: &str, n: usize) {
    if v.len() != n || !v.bytes().all(|b| b.is_ascii_digit()) {
        p.push(
            s.file(),
            s.key(key),
            format!("must be {n} digits, got {v:?}"),
        );
    }
}

fn terminal(file: &Path, t: Option<&Table>, p: &mut Problems) -> Option<Terminal> {
    let mut s = Section::new(file, "terminal", t);
    let fixmedins_code = s.req_str(p, "fixmedins_code");
    let fixmedins_name = s.req_str(p, "fixmedins_name");
    let mdtrtarea_admvs = s.req_str(p, "mdtrtarea_admvs");
    let opter = s.str_or(p, "opter", "ybpos");
    let opter_name = s.str_or(p, "opter_name", &opter);
    let opter_type = s.str_or(p, "opter_type", "1");
    let msgid_node = s.opt_u64(p, "msgid_node", 0..=99).map(|n| n as u8);
    let terminals = s.u64_or(p, "terminals", 1..=100, 1) as u8;
    if terminals > 1 && msgid_node.is_none() {
        // Without a node, every terminal counts msgids from the same start
        // each second: two PCs would send the same msgid, and one PC's
        // reversal (2601, by msgid) could undo the other's sale.
        p.push(
            file,
            s.key("msgid_node"),
            format!(
                "is required when terminal.terminals = {terminals}: give each terminal of the institution its own number 0–99"
            ),
        );
    }
    if let Some(code) = &fixmedins_code {
        // msgid = fixmedins_code (12) + time (14) + seq (4) = 30 chars (gateway.md §2).
        if code.len() != 12 || !code.is_ascii() {
            p.push(
                file,
                s.key("fixmedins_code"),
                format!("must be 12 ASCII characters (e.g. P42130200001), got {code:?}"),
            );
        }
    }
    if let Some(a) = &mdtrtarea_admvs {
        check_digits(&mut s, p, "mdtrtarea_admvs", a, 6);
    }
    if !matches!(opter_type.as_str(), "1" | "2" | "3") {
        p.push(file, s.key("opter_type"), "must be \"1\", \"2\" or \"3\"");
    }
    if opter.is_empty() || opter.chars().count() > 30 {
        p.push(file, s.key("opter"), "must be 1 to 30 characters");
    }
    s.finish(p);
    Some(Terminal {
        fixmedins_code: fixmedins_code?,
        fixmedins_name: fixmedins_name?,
        mdtrtarea_admvs: mdtrtarea_admvs?,
        opter,
        opter_name,
        opter_type,
        msgid_node,
        terminals,
    })
}

fn secret_file(s: &mut Section<'_>, p: &mut Problems, dir: &Path, auth: &str) -> Option<PathBuf> {
    let present = s.opt_str(p, "secret_file");
    let Some(v) = present else {
        p.push(
            s.file(),
            s.key("secret_file"),
            format!("is required when auth = {auth:?}"),
        );
        return None;
    };
    let path = resolve(dir, &v);
    check_secret_file(s, p, &path);
    Some(path)
}

/// A secret must exist and must not be readable by everyone (gateway.md §3).
fn check_secret_file(s: &mut Section<'_>, p: &mut Problems, path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Err(e) => p.push(
            s.file(),
            s.key("secret_file"),
            format!("cannot read {}: {e}", path.display()),
        ),
        Ok(m) if m.permissions().mode() & 0o004 != 0 => p.push(
            s.file(),
            s.key("secret_file"),
            format!(
                "{} is world-readable; run: chmod o-r {}",
                path.display(),
                path.display()
            ),
        ),
        Ok(_) => {}
    }
}

fn gateway(
    file: &Path,
    dir: &Path,
    t: Option<&Table>,
    terminal: Option<&Terminal>,
    p: &mut Problems,
) -> Option<Gateway> {
    let mut s = Section::new(file, "gateway", t);
    let url = s.req_str(p, "url");
    if let Some(u) = &url
        && !(u.starts_with("http://") || u.starts_with("https://"))
    {
        p.push(
            file,
            s.key("url"),
            format!("must start with http:// or https://, got {u:?}"),
        );
    }
    let profile = match s.str_or(p, "profile", "fsi-paths").as_str() {
        "fsi-paths" => Some(Profile::FsiPaths),
        "single-endpoint" => Some(Profile::SingleEndpoint),
        "infno-in-url" => Some(Profile::InfnoInUrl),
        other => {
            p.push(
                file,
                s.key("profile"),
                format!("must be fsi-paths, single-endpoint or infno-in-url, got {other:?}"),
            );
            None
        }
    };
    let auth_name = s.str_or(p, "auth", "none");
    let paasid = s.opt_str(p, "paasid");
    let ca_key = s.opt_str(p, "ca_key");
    let auth = match auth_name.as_str() {
        "none" => {
            if s.opt_str(p, "secret_file").is_some() {
                p.push(
                    file,
                    s.key("secret_file"),
                    "is set but auth = \"none\" does not use it",
                );
            }
            Some(Auth::None)
        }
        "tif" => {
            if paasid.is_none() {
                p.push(file, s.key("paasid"), "is required when auth = \"tif\"");
            }
            let f = secret_file(&mut s, p, dir, "tif");
            Some(Auth::Tif {
                paasid: paasid.unwrap_or_default(),
                secret_file: f.unwrap_or_default(),
            })
        }
        "x-ca" => {
            let f = secret_file(&mut s, p, dir, "x-ca");
            let key = ca_key
                .or_else(|| terminal.map(|t| t.fixmedins_code.clone()))
                .unwrap_or_default();
            Some(Auth::XCa {
                key,
                secret_file: f.unwrap_or_default(),
            })
        }
        "apikey" => {
            let f = secret_file(&mut s, p, dir, "apikey");
            Some(Auth::ApiKey {
                secret_file: f.unwrap_or_default(),
            })
        }
        other => {
            p.push(
                file,
                s.key("auth"),
                format!("must be tif, x-ca, apikey or none, got {other:?}"),
            );
            None
        }
    };
    let recer_sys_code = s.str_or(p, "recer_sys_code", "FSI_LOCAL");
    if recer_sys_code.len() > 10 {
        p.push(
            file,
            s.key("recer_sys_code"),
            "must be at most 10 characters",
        );
    }
    let infver = s.str_or(p, "infver", "V1.0");
    let connect_timeout = ms(s.u64_or(p, "connect_timeout_ms", 1..=600_000, 5_000));
    let request_timeout = ms(s.u64_or(p, "request_timeout_ms", 1..=600_000, 30_000));
    let decode_bare = s.bool_or(p, "decode_bare", false);
    let mut paths = BTreeMap::new();
    if let Some(pt) = s.table(p, "paths") {
        for (k, v) in pt {
            match v {
                Value::String(path) if path.starts_with('/') || path.starts_with("http") => {
                    paths.insert(k.clone(), path.clone());
                }
                _ => p.push(
                    file,
                    format!("gateway.paths.{k}"),
                    "expected a path starting with / (or a full URL)",
                ),
            }
        }
    }
    let ca_file = s.opt_str(p, "ca_file").map(|f| resolve(dir, &f));
    if let Some(f) = &ca_file
        && !f.is_file()
    {
        p.push(
            file,
            s.key("ca_file"),
            format!("{} does not exist", f.display()),
        );
    }
    let max_response_bytes = s.u64_or(
        p,
        "max_response_bytes",
        1024..=(256 << 20),
        DEFAULT_MAX_RESPONSE_BYTES,
    ) as usize;
    let dev_no = s.opt_str(p, "dev_no");
    let mac = s.str_or(p, "mac", "00:00:00:00:00:00");
    let ip = s.str_or(p, "ip", "127.0.0.1");
    s.finish(p);
    Some(Gateway {
        url: url?.trim_end_matches('/').to_string(),
        profile: profile?,
        auth: auth?,
        recer_sys_code,
        infver,
        connect_timeout,
        request_timeout,
        decode_bare,
        paths,
        ca_file,
        max_response_bytes,
        dev_no,
        mac,
        ip,
    })
}

fn parse_usb(v: &str) -> Option<UsbMatch> {
    let (vid, pid) = match v.split_once(':') {
        Some((a, b)) => (a, Some(b)),
        None => (v, None),
    };
    let vid = u16::from_str_radix(vid, 16).ok()?;
    let pid = match pid {
        Some(p) => Some(u16::from_str_radix(p, 16).ok()?),
        None => None,
    };
    Some(UsbMatch { vid, pid })
}

fn scanner(file: &Path, dir: &Path, i: usize, t: &Table, p: &mut Problems) -> Option<Scanner> {
    let mut s = Section::new(file, format!("scanner[{i}]"), Some(t));
    let id = s.req_str(p, "id");
    if let Some(id) = &id
        && (id.is_empty()
            || id.len() > 64
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))
    {
        p.push(
            file,
            s.key("id"),
            "must be 1–64 characters of [A-Za-z0-9._-]",
        );
    }
    let transport = match s.req_str(p, "transport").as_deref() {
        Some("serial") => Some(ScannerTransport::Serial),
        Some("hid-pos") => Some(ScannerTransport::HidPos),
        Some("hid-keyboard") => Some(ScannerTransport::HidKeyboard),
        Some(other) => {
            p.push(
                file,
                s.key("transport"),
                format!("must be serial, hid-pos or hid-keyboard, got {other:?}"),
            );
            None
        }
        None => None,
    };
    let path = s.opt_str(p, "path").map(|v| resolve(dir, &v));
    let usb = s.opt_str(p, "usb").and_then(|v| {
        let m = parse_usb(&v);
        if m.is_none() {
            p.push(
                file,
                s.key("usb"),
                format!("must be \"vid:pid\" in hex, got {v:?}"),
            );
        }
        m
    });
    let serial_number = s.opt_str(p, "serial_number");
    let port_path = s.opt_str(p, "port_path");
    let baud = s.u64_or(p, "baud", 50..=4_000_000, 9600) as u32;
    let data_bits = s.u64_or(p, "data_bits", 5..=8, 8) as u8;
    let stop_bits = s.u64_or(p, "stop_bits", 1..=2, 1) as u8;
    let parity = match s.str_or(p, "parity", "none").as_str() {
        "none" => Parity::None,
        "odd" => Parity::Odd,
        "even" => Parity::Even,
        other => {
            p.push(
                file,
                s.key("parity"),
                format!("must be none, odd or even, got {other:?}"),
            );
            Parity::None
        }
    };
    let suffix = named_suffix(s.str_or(p, "suffix", "\r"));
    let framing = match s.str_or(p, "framing", "suffix").as_str() {
        "suffix" => {
            if suffix.is_empty() {
                p.push(
                    file,
                    s.key("suffix"),
                    "must not be empty with framing = \"suffix\"",
                );
            }
            Framing::Suffix(suffix.into_bytes())
        }
        "stx-etx" => Framing::StxEtx,
        "idle" => Framing::Idle,
        other => {
            p.push(
                file,
                s.key("framing"),
                format!("must be suffix, stx-etx or idle, got {other:?}"),
            );
            Framing::Suffix(b"\r".to_vec())
        }
    };
    let idle_gap = ms(s.u64_or(p, "idle_ms", 5..=10_000, 100));
    let max_frame = s.u64_or(p, "max_frame", 16..=(1 << 20), DEFAULT_MAX_FRAME) as usize;
    let continued_timeout = s.opt_u64(p, "continued_timeout_ms", CONTINUED_TIMEOUT_RANGE_MS);
    let alt_codes = match s.str_or(p, "alt_codes", "unicode").as_str() {
        "unicode" => AltCodeMode::Unicode,
        "gbk" => AltCodeMode::Gbk,
        "windows-1252" => AltCodeMode::Windows1252,
        other => {
            p.push(
                file,
                s.key("alt_codes"),
                format!("must be unicode, gbk or windows-1252, got {other:?}"),
            );
            AltCodeMode::Unicode
        }
    };
    let trigger_on_wait = s.bool_or(p, "trigger_on_wait", false);
    let beep_on_wait = s.bool_or(p, "beep_on_wait", false);
    let trigger_command = s.opt_str(p, "trigger_command").map(String::into_bytes);
    if let Some(pp) = &port_path
        && !valid_port_path(pp)
    {
        p.push(
            file,
            s.key("port_path"),
            format!("must be a USB port path like \"1-2\" or \"1-2.3\", got {pp:?}"),
        );
    }
    s.finish(p);
    let transport = transport?;
    match transport {
        ScannerTransport::Serial
            if path.is_none()
                && usb.is_none()
                && serial_number.is_none()
                && port_path.is_none() =>
        {
            p.push(
                file,
                s_key(i, "path"),
                "a serial scanner needs path, or usb / serial_number / port_path",
            );
        }
        ScannerTransport::HidKeyboard if usb.is_none() => {
            p.push(
                file,
                s_key(i, "usb"),
                "a keyboard-wedge scanner needs usb = \"vid:pid\" (plus serial_number or \
                 port_path to tell identical ones apart)",
            );
        }
        _ => {}
    }
    if transport == ScannerTransport::HidKeyboard && path.is_some() {
        p.push(
            file,
            s_key(i, "path"),
            "a keyboard-wedge scanner is read through libusb: bind it with usb, \
             serial_number or port_path, not path",
        );
    }
    if transport != ScannerTransport::HidPos && continued_timeout.is_some() {
        p.push(
            file,
            s_key(i, "continued_timeout_ms"),
            "only hid-pos scanners take a continued_timeout_ms",
        );
    }
    if transport != ScannerTransport::Serial && trigger_command.is_some() {
        p.push(
            file,
            s_key(i, "trigger_command"),
            "only serial scanners take a trigger_command",
        );
    }
    if trigger_command
        .as_ref()
        .is_some_and(|c| c.is_empty() || c.len() > 64)
    {
        p.push(file, s_key(i, "trigger_command"), "must be 1 to 64 bytes");
    }
    Some(Scanner {
        id: id?,
        transport,
        path,
        usb,
        serial_number,
        port_path,
        line: SerialLine {
            baud,
            data_bits,
            parity,
            stop_bits,
        },
        framing,
        idle_gap,
        max_frame,
        continued_timeout: ms(continued_timeout.unwrap_or(DEFAULT_CONTINUED_TIMEOUT_MS)),
        alt_codes,
        trigger_on_wait,
        beep_on_wait,
        trigger_command,
    })
}

/// Suffix names for configs that cannot spell control characters.
fn named_suffix(v: String) -> String {
    match v.as_str() {
        "CR" => "\r".into(),
        "LF" => "\n".into(),
        "CRLF" => "\r\n".into(),
        "TAB" => "\t".into(),
        "ETX" => "\u{3}".into(),
        "EOT" => "\u{4}".into(),
        _ => v,
    }
}

/// `bus-port[.port…]`, as the kernel names USB devices in sysfs.
fn valid_port_path(v: &str) -> bool {
    let Some((bus, ports)) = v.split_once('-') else {
        return false;
    };
    let num = |s: &str| !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit());
    num(bus) && ports.split('.').all(num)
}

fn s_key(i: usize, k: &str) -> String {
    format!("scanner[{i}].{k}")
}

fn api(file: &Path, dir: &Path, t: Option<&Table>, p: &mut Problems) -> Option<Api> {
    let mut s = Section::new(file, "api", t);
    let socket = resolve(dir, &s.str_or(p, "socket", "/run/ybpos/api.sock"));
    let socket_group = s.opt_str(p, "socket_group").filter(|g| !g.is_empty());
    let http = s.str_or(p, "http_listen", "127.0.0.1:17480");
    let allow_non_loopback = s.bool_or(p, "http_allow_non_loopback", false);
    let http_listen = if http.is_empty() {
        None
    } else {
        match http.parse::<SocketAddr>() {
            Ok(a) if !a.ip().is_loopback() && !allow_non_loopback => {
                p.push(
                    file,
                    s.key("http_listen"),
                    format!(
                        "{a} is not a loopback address; set http_allow_non_loopback = true to \
                         expose the payment API to the network"
                    ),
                );
                None
            }
            Ok(a) => Some(a),
            Err(_) => {
                p.push(
                    file,
                    s.key("http_listen"),
                    format!("must be ip:port (e.g. 127.0.0.1:17480) or \"\", got {http:?}"),
                );
                None
            }
        }
    };
    let token_file = resolve(dir, &s.str_or(p, "token_file", "/etc/ybpos/api-token"));
    let allowed_origins = s.str_list(p, "allowed_origins");
    let allowed_uids = s.u32_list(p, "allowed_uids");
    let max_request_bytes = s.u64_or(
        p,
        "max_request_bytes",
        1024..=(64 << 20),
        DEFAULT_MAX_REQUEST_BYTES,
    ) as usize;
    let max_connections =
        s.u64_or(p, "max_connections", 1..=65_536, DEFAULT_MAX_CONNECTIONS) as usize;
    let idle_timeout = ms(s.u64_or(
        p,
        "idle_timeout_ms",
        1_000..=86_400_000,
        DEFAULT_IDLE_TIMEOUT_MS,
    ));
    s.finish(p);
    Some(Api {
        socket,
        socket_group,
        http_listen,
        token_file,
        allowed_origins,
        allowed_uids,
        max_request_bytes,
        max_connections,
        idle_timeout,
    })
}

fn journal(file: &Path, dir: &Path, t: Option<&Table>, p: &mut Problems) -> Journal {
    let mut s = Section::new(file, "journal", t);
    let path = resolve(dir, &s.str_or(p, "path", "/var/lib/ybpos/journal.db"));
    let reversal_grace = s.opt_u64(p, "reversal_grace_ms", 0..=3_600_000).map(ms);
    let max_unclear_answers = s.u64_or(p, "max_unclear_answers", 1..=1000, 10) as u32;
    s.finish(p);
    Journal {
        path,
        reversal_grace,
        max_unclear_answers,
    }
}

fn codes(file: &Path, t: Option<&Table>, p: &mut Problems) -> Option<Codes> {
    let mut s = Section::new(file, "codes", t);
    let dedupe_window = ms(s.u64_or(p, "dedupe_window_ms", 0..=60_000, 1500));
    let pat = s.str_or(p, "medical_code_pattern", "^[0-9A-Za-z]{1,64}$");
    let medical_code_pattern = match regex::Regex::new(&pat) {
        Ok(r) => Some(r),
        Err(e) => {
            p.push(
                file,
                s.key("medical_code_pattern"),
                format!("not a valid regex: {e}"),
            );
            None
        }
    };
    s.finish(p);
    Some(Codes {
        dedupe_window,
        medical_code_pattern: medical_code_pattern?,
    })
}

fn session(file: &Path, t: Option<&Table>, p: &mut Problems) -> Session {
    let mut s = Section::new(file, "session", t);
    let ttl = ms(s.u64_or(p, "ttl_ms", 10_000..=86_400_000, DEFAULT_SESSION_TTL_MS));
    s.finish(p);
    Session { ttl }
}

fn log(file: &Path, t: Option<&Table>, p: &mut Problems) -> Log {
    let mut s = Section::new(file, "log", t);
    let filter = s.opt_str(p, "filter");
    if let Some(f) = &filter
        && (f.trim().is_empty() || !f.chars().all(|c| c.is_ascii_graphic()))
    {
        p.push(
            file,
            s.key("filter"),
            "expected tracing filter directives such as \"info\" or \"info,ybpos_daemon=debug\"",
        );
    }
    s.finish(p);
    Log { filter }
}

/// `[kiosk]`: kiosk mode is `terminal.opter_type = "2"`; the table tunes it
/// and is refused on a staffed terminal (it would do nothing there).
fn kiosk(
    file: &Path,
    t: Option<&Table>,
    terminal: Option<&Terminal>,
    p: &mut Problems,
) -> Option<Kiosk> {
    let is_kiosk = terminal.is_some_and(|t| t.opter_type == "2");
    if !is_kiosk {
        if t.is_some() {
            p.push(
                file,
                "kiosk",
                "[kiosk] applies only to a self-service kiosk: set terminal.opter_type = \"2\" or remove [kiosk]",
            );
        }
        return None;
    }
    let mut s = Section::new(file, "kiosk", t);
    let scan_wait_default = ms(s.u64_or(
        p,
        "scan_wait_ms",
        1_000..=120_000,
        DEFAULT_KIOSK_SCAN_WAIT_MS,
    ));
    let typed_id_numbers = s.bool_or(p, "typed_id_numbers", false);
    s.finish(p);
    Some(Kiosk {
        scan_wait_default,
        typed_id_numbers,
    })
}
