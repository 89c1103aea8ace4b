use std::path::Path;
use std::time::Duration;

use super::*;

const MINIMAL: &str = r#"
[terminal]
fixmedins_code  = "P42130200001"
fixmedins_name  = "广水市示例大药房"
mdtrtarea_admvs = "421381"

[gateway]
url = "http://127.0.0.1:9/fsi/api"
"#;

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    from_toml(text, Path::new("/etc/ybpos/ybpos.toml"))
}

fn keys(e: &ConfigErrors) -> Vec<&str> {
    e.0.iter().map(|e| e.key.as_str()).collect()
}

#[test]
fn minimal_file_gets_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.terminal.opter_type, "1");
    assert_eq!(c.gateway.profile, Profile::FsiPaths);
    assert_eq!(c.gateway.auth, Auth::None);
    assert_eq!(c.gateway.request_timeout, Duration::from_secs(30));
    assert_eq!(c.gateway.url, "http://127.0.0.1:9/fsi/api");
    assert_eq!(c.api.socket, Path::new("/run/ybpos/api.sock"));
    assert_eq!(c.api.http_listen.unwrap().port(), 17480);
    assert_eq!(c.api.max_request_bytes, 1 << 20);
    assert_eq!(c.codes.dedupe_window, Duration::from_millis(1500));
    assert!(
        c.codes
            .medical_code_pattern
            .is_match("4243754826492874240001130000")
    );
    assert_eq!(c.session.ttl, Duration::from_secs(600));
    assert!(c.scanners.is_empty());
}

#[test]
fn the_documented_example_parses() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o640)).unwrap();
    let text = include_str!("../examples/ybpos.toml");
    let c = from_toml(text, &dir.path().join("ybpos.toml")).unwrap();
    assert_eq!(c.scanners.len(), 1);
    assert_eq!(c.scanners[0].framing, Framing::Suffix(b"\r".to_vec()));
    assert_eq!(c.gateway.auth.as_str(), "tif");
    // Relative paths are relative to the config file's folder.
    match &c.gateway.auth {
        Auth::Tif { secret_file, .. } => assert_eq!(secret_file, &secret),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_problem_is_reported_with_file_and_key() {
    let text = r#"
[terminal]
fixmedins_code  = "P4213"
fixmedins_name  = 7
mdtrtarea_admvs = "42138"
colour = "red"

[gateway]
url = "ftp://x"
profile = "fsi-path"
request_timeout_ms = "30"

[[scanner]]
id = "a"
transport = "serial"
baud = -1
parity = "mark"

[api]
http_listen = "0.0.0.0:17480"

[codes]
medical_code_pattern = "("

[nonsense]
"#;
    let e = parse(text).unwrap_err();
    let k = keys(&e);
    for want in [
        "terminal.fixmedins_code",
        "terminal.fixmedins_name",
        "terminal.mdtrtarea_admvs",
        "terminal.colour",
        "gateway.url",
        "gateway.profile",
        "gateway.request_timeout_ms",
        "scanner[0].baud",
        "scanner[0].parity",
        "scanner[0].path",
        "api.http_listen",
        "codes.medical_code_pattern",
        "nonsense",
    ] {
        assert!(k.contains(&want), "missing {want} in {k:?}");
    }
    let text = e.to_string();
    assert!(
        text.contains("/etc/ybpos/ybpos.toml: terminal.colour: unknown key"),
        "{text}"
    );
}

#[test]
fn missing_sections_are_named() {
    let e = parse("").unwrap_err();
    let k = keys(&e);
    assert!(k.contains(&"terminal") && k.contains(&"gateway"), "{k:?}");
}

#[test]
fn syntax_errors_name_the_line() {
    let e = parse("[terminal]\nfixmedins_code = \n").unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert!(e.0[0].message.contains("line 2"), "{}", e.0[0].message);
}

#[test]
fn world_readable_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = format!("{MINIMAL}auth = \"apikey\"\nsecret_file = \"secret\"\n",);
    let e = from_toml(&text, &dir.path().join("ybpos.toml")).unwrap_err();
    assert_eq!(keys(&e), ["gateway.secret_file"]);
    assert!(e.0[0].message.contains("world-readable"));
}

#[test]
fn tif_needs_paasid_and_secret() {
    let text = format!("{MINIMAL}auth = \"tif\"\n");
    let e = parse(&text).unwrap_err();
    let k = keys(&e);
    assert!(
        k.contains(&"gateway.paasid") && k.contains(&"gateway.secret_file"),
        "{k:?}"
    );
}

#[test]
fn scanner_variants() {
    let text = format!(
        r#"{MINIMAL}
[[scanner]]
id = "counter"
transport = "serial"
path = "/dev/serial/by-id/usb-Honeywell-if00"
framing = "stx-etx"
baud = 115200
parity = "even"

[[scanner]]
id = "wedge"
transport = "hid-keyboard"
usb = "1eab:1a03"
serial_number = "ABC"
alt_codes = "gbk"
suffix = "\t"

[[scanner]]
id = "pos"
transport = "hid-pos"
"#
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.scanners[0].framing, Framing::StxEtx);
    assert_eq!(c.scanners[0].line.parity, Parity::Even);
    assert_eq!(
        c.scanners[1].usb,
        Some(UsbMatch {
            vid: 0x1eab,
            pid: Some(0x1a03)
        })
    );
    assert_eq!(c.scanners[1].alt_codes, AltCodeMode::Gbk);
    assert_eq!(c.scanners[1].framing, Framing::Suffix(b"\t".to_vec()));
    assert_eq!(c.scanners[2].transport, ScannerTransport::HidPos);
}

#[test]
fn hid_pos_continued_timeout_is_read_and_validated_with_its_key() {
    let text = format!(
        r#"{MINIMAL}
[[scanner]]
id = "pos"
transport = "hid-pos"
continued_timeout_ms = 80

[[scanner]]
id = "pos2"
transport = "hid-pos"
usb = "0c2e:0b87"
"#
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.scanners[0].continued_timeout, Duration::from_millis(80));
    assert_eq!(
        c.scanners[1].continued_timeout,
        Duration::from_millis(DEFAULT_CONTINUED_TIMEOUT_MS)
    );
    let text = format!(
        r#"{MINIMAL}
[[scanner]]
id = "pos"
transport = "hid-pos"
continued_timeout_ms = 5

[[scanner]]
id = "pos2"
transport = "hid-pos"
usb = "0c2e:0b87"
continued_timeout_ms = "fast"

[[scanner]]
id = "acm"
transport = "serial"
path = "/dev/ttyACM0"
continued_timeout_ms = 50
"#
    );
    let e = parse(&text).unwrap_err();
    assert_eq!(
        keys(&e),
        [
            "scanner[0].continued_timeout_ms",
            "scanner[1].continued_timeout_ms",
            "scanner[2].continued_timeout_ms"
        ]
    );
    assert!(e.0[0].message.contains("10..=250"), "{}", e.0[0].message);
}

#[test]
fn alt_codes_windows_1252_is_accepted_and_bad_values_are_named() {
    let wedge = |mode: &str| {
        format!(
            "{MINIMAL}\n[[scanner]]\nid = \"w\"\ntransport = \"hid-keyboard\"\nusb = \"1eab:1a03\"\nalt_codes = \"{mode}\"\n"
        )
    };
    let c = parse(&wedge("windows-1252")).unwrap();
    assert_eq!(c.scanners[0].alt_codes, AltCodeMode::Windows1252);
    let e = parse(&wedge("cp437")).unwrap_err();
    assert_eq!(keys(&e), ["scanner[0].alt_codes"]);
    assert!(
        e.0[0].message.contains("windows-1252"),
        "{}",
        e.0[0].message
    );
}

#[test]
fn duplicate_scanner_ids_are_refused() {
    let text = format!(
        "{MINIMAL}\n[[scanner]]\nid=\"a\"\ntransport=\"serial\"\npath=\"/dev/x\"\n\n[[scanner]]\nid=\"a\"\ntransport=\"serial\"\npath=\"/dev/y\"\n"
    );
    let e = parse(&text).unwrap_err();
    assert_eq!(keys(&e), ["scanner[1].id"]);
}

#[test]
fn empty_http_listen_disables_http() {
    let text = format!("{MINIMAL}\n[api]\nhttp_listen = \"\"\nsocket = \"run/api.sock\"\n");
    let c = parse(&text).unwrap();
    assert!(c.api.http_listen.is_none());
    assert_eq!(c.api.socket, Path::new("/etc/ybpos/run/api.sock"));
}

#[test]
fn scanner_binding_and_control_keys() {
    let text = format!(
        r#"{MINIMAL}
[[scanner]]
id = "acm"
transport = "serial"
usb = "0c2e:0b6a"
serial_number = "17017B1234"
suffix = "CRLF"
trigger_on_wait = true
trigger_command = "\u0016T\r"
max_frame = 8192

[[scanner]]
id = "pos"
transport = "hid-pos"
port_path = "1-2.3"
trigger_on_wait = true
beep_on_wait = true

[[scanner]]
id = "any-pos"
transport = "hid-pos"

[[scanner]]
id = "etx"
transport = "serial"
path = "/dev/ttyS0"
suffix = "ETX"
"#
    );
    let c = parse(&text).unwrap();
    let acm = &c.scanners[0];
    assert_eq!(acm.framing, Framing::Suffix(b"\r\n".to_vec()));
    assert_eq!(acm.trigger_command.as_deref(), Some(&b"\x16T\r"[..]));
    assert_eq!(acm.serial_number.as_deref(), Some("17017B1234"));
    assert_eq!(acm.max_frame, 8192);
    assert!(acm.is_bound());
    let pos = &c.scanners[1];
    assert_eq!(pos.port_path.as_deref(), Some("1-2.3"));
    assert!(pos.trigger_on_wait && pos.beep_on_wait);
    assert!(!c.scanners[2].is_bound());
    assert_eq!(c.scanners[3].framing, Framing::Suffix(vec![0x03]));
}

#[test]
fn bad_scanner_bindings_are_named() {
    let text = format!(
        r#"{MINIMAL}
[[scanner]]
id = "wedge"
transport = "hid-keyboard"
path = "/dev/input/event3"
port_path = "usb1"

[[scanner]]
id = "pos1"
transport = "hid-pos"
trigger_command = "T"

[[scanner]]
id = "pos2"
transport = "hid-pos"

[[scanner]]
id = "serial"
transport = "serial"
max_frame = 4
trigger_command = ""
"#
    );
    let e = parse(&text).unwrap_err();
    let k = keys(&e);
    for want in [
        "scanner[0].usb",
        "scanner[0].path",
        "scanner[0].port_path",
        "scanner[1].trigger_command",
        "scanner[2].usb",
        "scanner[3].path",
        "scanner[3].max_frame",
        "scanner[3].trigger_command",
    ] {
        assert!(k.contains(&want), "missing {want} in {k:?}");
    }
}

#[test]
fn log_filter_is_optional_and_checked_for_shape() {
    assert_eq!(parse(MINIMAL).unwrap().log.filter, None);
    let c = parse(&format!(
        "{MINIMAL}[log]\nfilter = \"info,ybpos_daemon=debug\"\n"
    ))
    .unwrap();
    assert_eq!(c.log.filter.as_deref(), Some("info,ybpos_daemon=debug"));
    for bad in ["\"\"", "\"info debug\"", "3"] {
        let e = parse(&format!("{MINIMAL}[log]\nfilter = {bad}\n")).unwrap_err();
        assert_eq!(keys(&e), ["log.filter"], "{bad}");
    }
    let e = parse(&format!("{MINIMAL}[log]\nlevel = \"info\"\n")).unwrap_err();
    assert_eq!(keys(&e), ["log.level"]);
}

#[test]
fn kiosk_mode_is_opter_type_2_with_stricter_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.kiosk, None);
    let kiosk = MINIMAL.replace(
        "mdtrtarea_admvs = \"421381\"",
        "mdtrtarea_admvs = \"421381\"\nopter_type = \"2\"",
    );
    let c = parse(&kiosk).unwrap();
    let k = c.kiosk.unwrap();
    assert_eq!(k.scan_wait_default, Duration::from_secs(20));
    assert!(!k.typed_id_numbers);
    let tuned = format!("{kiosk}\n[kiosk]\nscan_wait_ms = 15000\ntyped_id_numbers = true\n");
    let k = parse(&tuned).unwrap().kiosk.unwrap();
    assert_eq!(k.scan_wait_default, Duration::from_secs(15));
    assert!(k.typed_id_numbers);
    // Out of range, a typo, and [kiosk] on a staffed counter: each named.
    let bad = format!("{kiosk}\n[kiosk]\nscan_wait_ms = 500000\nscan_wait = 1\n");
    let e = parse(&bad).unwrap_err();
    assert_eq!(keys(&e), ["kiosk.scan_wait_ms", "kiosk.scan_wait"], "{e}");
    let e = parse(&format!("{MINIMAL}\n[kiosk]\nscan_wait_ms = 15000\n")).unwrap_err();
    assert_eq!(keys(&e), ["kiosk"], "{e}");
}
