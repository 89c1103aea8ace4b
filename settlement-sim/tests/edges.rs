//! The client's edges: every odd answer a gateway can give (from a canned
//! raw-TCP server), TLS with a custom CA bundle (certificates generated
//! here), and settings from the config file (timeouts, CA, auth, limits).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use serde_json::json;
use settlement_client::Outcome;
use settlement_client::auth::Signer;
use settlement_client::envelope::Response;
use settlement_client::gateway::{Gateway, GatewaySettings, signer_from_config};
use settlement_sim::{FaultKind, FaultRule, SimSettings, Simulator, tls_config_from_pem};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ybpos_config::Profile;

/// A server that reads one request per connection and answers `reply`
/// verbatim, then closes.
async fn canned(reply: Vec<u8>) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head, then content-length bytes of body.
                loop {
                    let n = match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let _ = s.write_all(&reply).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

fn http_reply(status: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 {status}\r\nconnection: close\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    if !headers.iter().any(|h| h.starts_with("transfer-encoding")) {
        r.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    r.push_str("\r\n");
    let mut v = r.into_bytes();
    v.extend_from_slice(body);
    v
}

const JSON_CT: &str = "content-type: application/json;charset=utf-8";

/// Posts one 1101 envelope to a canned server through the gateway client.
async fn against(reply: Vec<u8>, max: usize) -> Outcome<Response> {
    let addr = canned(reply).await;
    let h = http(Duration::from_secs(3), max, None);
    let g = Gateway::new(
        settings(
            &format!("http://{addr}/fsi/api"),
            Profile::InfnoInUrl,
            h,
            false,
        ),
        Signer::None,
    )
    .unwrap();
    let p = g
        .prepare(
            "1101",
            json!({"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": "x"}}),
            "",
            "s1",
        )
        .unwrap();
    g.send(&p).await
}

fn class(o: &Outcome<Response>) -> &'static str {
    o.class()
}

#[tokio::test]
async fn every_odd_answer_is_classified() {
    // Success with output null: Ok, no output (2203, 2205 … answer like this).
    let o = against(
        http_reply(
            "200 OK",
            &[JSON_CT],
            br#"{"infcode":0,"err_msg":"success","output":null}"#,
        ),
        1 << 16,
    )
    .await;
    assert!(matches!(&o, Outcome::Ok(r) if r.output.is_none()), "{o:?}");
    // Failure with a string infcode and output null: a definitive no.
    let o = against(
        http_reply(
            "200 OK",
            &[JSON_CT],
            r#"{"infcode":"-1","err_msg":"FSI-人员不存在","output":null,"inf_refmsgid":null}"#
                .as_bytes(),
        ),
        1 << 16,
    )
    .await;
    assert_eq!(
        o,
        Outcome::Rejected {
            infcode: -1,
            err_msg: "FSI-人员不存在".into()
        }
    );
    // Any negative infcode is a no.
    let o = against(
        http_reply("200 OK", &[JSON_CT], br#"{"infcode":-2,"err_msg":"x"}"#),
        1 << 16,
    )
    .await;
    assert!(matches!(o, Outcome::Rejected { infcode: -2, .. }));
    // A BOM before the JSON is tolerated.
    let mut bom = "\u{feff}".as_bytes().to_vec();
    bom.extend_from_slice(br#"{"infcode":"0","output":{"a":1}}"#);
    assert_eq!(
        class(&against(http_reply("200 OK", &[JSON_CT], &bom), 1 << 16).await),
        "ok"
    );
    // GB2312/GBK declared and used: decoded.
    let (gbk, _, _) = encoding_rs::GBK.encode(r#"{"infcode":-1,"err_msg":"FSI-签到编号无效"}"#);
    let o = against(
        http_reply(
            "200 OK",
            &["content-type: application/json; charset=\"gb2312\""],
            &gbk,
        ),
        1 << 16,
    )
    .await;
    assert_eq!(
        o,
        Outcome::Rejected {
            infcode: -1,
            err_msg: "FSI-签到编号无效".into()
        }
    );
    // Bytes that are not valid in the declared charset: unknown.
    let o = against(
        http_reply(
            "200 OK",
            &["content-type: application/json;charset=GBK"],
            b"{\"infcode\":0,\"x\":\"\xff\xff\"}",
        ),
        1 << 16,
    )
    .await;
    assert_eq!(class(&o), "unknown", "{o:?}");
    let o = against(
        http_reply("200 OK", &[JSON_CT], b"{\"infcode\":0,\"x\":\"\xc3\"}"),
        1 << 16,
    )
    .await;
    assert_eq!(class(&o), "unknown", "{o:?}");
    // Not JSON, empty, not an envelope, a non-numeric infcode: unknown.
    for body in [
        &b"<html>502</html>"[..],
        b"",
        b"[1,2]",
        br#"{"infcode":"ok"}"#,
        br#"{"output":{}}"#,
        br#"{"infcode":0"#,
    ] {
        let o = against(http_reply("200 OK", &[JSON_CT], body), 1 << 16).await;
        assert_eq!(
            class(&o),
            "unknown",
            "{:?} → {o:?}",
            String::from_utf8_lossy(body)
        );
    }
    // Over the size limit, declared or chunked: unknown.
    let big = format!(
        r#"{{"infcode":0,"output":{{"pad":"{}"}}}}"#,
        "x".repeat(5000)
    );
    assert_eq!(
        class(&against(http_reply("200 OK", &[JSON_CT], big.as_bytes()), 4096).await),
        "unknown"
    );
    let mut chunked = String::new();
    for part in big.as_bytes().chunks(1000) {
        chunked.push_str(&format!(
            "{:x}\r\n{}\r\n",
            part.len(),
            String::from_utf8_lossy(part)
        ));
    }
    chunked.push_str("0\r\n\r\n");
    let o = against(
        http_reply(
            "200 OK",
            &[JSON_CT, "transfer-encoding: chunked"],
            chunked.as_bytes(),
        ),
        4096,
    )
    .await;
    assert_eq!(class(&o), "unknown", "{o:?}");
    // …and the same body under the limit is fine.
    assert_eq!(
        class(
            &against(
                http_reply(
                    "200 OK",
                    &[JSON_CT, "transfer-encoding: chunked"],
                    chunked.as_bytes()
                ),
                1 << 16
            )
            .await
        ),
        "ok"
    );
    // Truncated: content-length promises more than arrives.
    let mut cut =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n"
            .to_vec();
    cut.extend_from_slice(br#"{"infcode":0,"out"#);
    assert_eq!(class(&against(cut, 1 << 16).await), "unknown");
    // Closed without an answer after the request was sent: unknown.
    assert_eq!(class(&against(Vec::new(), 1 << 16).await), "unknown");
    // HTTP errors: 4xx is a definitive no, 5xx and 3xx are unknown (never followed).
    let o = against(
        http_reply(
            "404 Not Found",
            &["content-type: text/plain"],
            b"no such service",
        ),
        1 << 16,
    )
    .await;
    assert!(
        matches!(o, Outcome::Rejected { infcode: -404, .. }),
        "{o:?}"
    );
    for st in [
        "500 Internal Server Error",
        "503 Service Unavailable",
        "307 Temporary Redirect",
        "302 Found",
    ] {
        let o = against(
            http_reply(
                st,
                &["location: http://127.0.0.1:9/elsewhere", JSON_CT],
                br#"{"infcode":0}"#,
            ),
            1 << 16,
        )
        .await;
        assert_eq!(class(&o), "unknown", "{st}: {o:?}");
    }
}

#[tokio::test]
async fn nothing_sent_when_the_connection_cannot_be_made() {
    // Refused.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let h = http(Duration::from_secs(3), 1 << 16, None);
    let g = Gateway::new(
        settings(
            &format!("http://{addr}/fsi/api"),
            Profile::FsiPaths,
            h,
            false,
        ),
        Signer::None,
    )
    .unwrap();
    assert_eq!(g.sign_in().await.class(), "not_sent");
    // Connect timeout: a listener whose accept queue is full drops new SYNs.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = sock.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut hold = Vec::new();
    let mut blocked = false;
    for _ in 0..16 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => hold.push(s),
            Err(_) => {
                blocked = true;
                break;
            }
        }
    }
    assert!(blocked, "the accept queue never filled");
    let mut h = http(Duration::from_secs(5), 1 << 16, None);
    h.connect_timeout = Duration::from_millis(300);
    let g = Gateway::new(
        settings(
            &format!("http://{addr}/fsi/api"),
            Profile::FsiPaths,
            h,
            false,
        ),
        Signer::None,
    )
    .unwrap();
    let o = g.sign_in().await;
    assert_eq!(o.class(), "not_sent", "{o:?}");
    drop(listener);
}

/// A private CA and a server certificate for 127.0.0.1 signed by it.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Test Provincial Gateway CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca_cert, &ca_key)
        .unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        cert_pem: leaf.pem(),
        key_pem: key.serialize_pem(),
    }
}

#[tokio::test]
async fn tls_with_a_custom_ca_bundle() {
    let p = pki();
    let tls = tls_config_from_pem(p.cert_pem.as_bytes(), p.key_pem.as_bytes()).unwrap();
    let sim = Simulator::new(SimSettings::default(), Signer::None)
        .bind_tls("127.0.0.1:0".parse().unwrap(), tls)
        .await
        .unwrap();
    assert!(sim.base_url().starts_with("https://"));
    let gw = |ca: Option<Vec<u8>>| {
        let h = http(Duration::from_secs(3), 1 << 20, ca);
        Gateway::new(
            settings(&sim.base_url(), Profile::FsiPaths, h, false),
            Signer::None,
        )
        .unwrap()
    };
    // Trusting the private CA: the whole flow works.
    let g = gw(Some(p.ca_pem.clone().into_bytes()));
    let w = identify(&g, &sim, "1", "01101").await;
    assert_eq!(w.psn_no, "42000000000000000002");
    // Without it, or with another CA: refused before the body left.
    let o = gw(None).sign_in().await;
    assert_eq!(o.class(), "not_sent", "{o:?}");
    let other = pki();
    let o = gw(Some(other.ca_pem.into_bytes())).sign_in().await;
    assert_eq!(o.class(), "not_sent", "{o:?}");
    assert_eq!(
        sim.sim.calls("9001"),
        1,
        "only the trusted client got through"
    );
    // A bundle without certificates is a set-up error, not a silent fallback.
    let h = http(Duration::from_secs(3), 1 << 20, Some(b"not a pem".to_vec()));
    assert!(
        Gateway::new(
            settings(&sim.base_url(), Profile::FsiPaths, h, false),
            Signer::None
        )
        .is_err()
    );
    assert!(tls_config_from_pem(b"", p.key_pem.as_bytes()).is_err());
    assert!(tls_config_from_pem(p.cert_pem.as_bytes(), b"junk").is_err());
    sim.shutdown().await;
}

#[tokio::test]
async fn settings_from_the_config_file_timeouts_ca_auth_and_limits() {
    let p = pki();
    let secret = "zj-secret";
    let tls = tls_config_from_pem(p.cert_pem.as_bytes(), p.key_pem.as_bytes()).unwrap();
    let sim = Simulator::new(
        SimSettings::default(),
        Signer::XCa {
            key: "H42138100001".into(),
            secret: secret.into(),
        },
    )
    .bind_tls("127.0.0.1:0".parse().unwrap(), tls)
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), format!("{secret}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.path().join("secret"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(dir.path().join("ca.pem"), &p.ca_pem).unwrap();
    let cfg_path = dir.path().join("ybpos.toml");
    std::fs::write(
        &cfg_path,
        format!(
            r#"
[terminal]
fixmedins_code  = "H42138100001"
fixmedins_name  = "示例医院"
mdtrtarea_admvs = "421381"

[gateway]
url                = "{url}"
profile            = "infno-in-url"
auth               = "x-ca"
secret_file        = "secret"
ca_file            = "ca.pem"
connect_timeout_ms = 1000
request_timeout_ms = 600
max_response_bytes = 8192
"#,
            url = sim.base_url()
        ),
    )
    .unwrap();
    let cfg = ybpos_config::load(&cfg_path).unwrap();
    let settings = GatewaySettings::from_config(&cfg).unwrap();
    assert_eq!(settings.http.request_timeout, Duration::from_millis(600));
    assert_eq!(settings.http.connect_timeout, Duration::from_millis(1000));
    let g = Gateway::new(settings, signer_from_config(&cfg).unwrap()).unwrap();
    // TLS with the configured CA, x-ca signed with the configured secret.
    assert_eq!(g.sign_in().await.class(), "ok");
    let q = json!({"data": {"mdtrt_cert_type": "03", "mdtrt_cert_no": "K42138100002", "card_sn": "421381D15600000500BF7C7A2"}});
    assert_eq!(g.call("1101", q.clone(), "").await.class(), "ok");
    // The configured request timeout: a 100 ms answer is fine, a 1300 ms one is unknown.
    sim.sim.add_fault(FaultRule::next(
        "1101",
        FaultKind::CommitThenDelay { ms: 100 },
    ));
    assert_eq!(g.call("1101", q.clone(), "").await.class(), "ok");
    sim.sim.add_fault(FaultRule::next(
        "1101",
        FaultKind::CommitThenDelay { ms: 1300 },
    ));
    assert_eq!(g.call("1101", q.clone(), "").await.class(), "unknown");
    // The configured size limit.
    sim.sim.add_fault(FaultRule::next(
        "1101",
        FaultKind::OversizeAfterCommit { bytes: 9000 },
    ));
    assert_eq!(g.call("1101", q.clone(), "").await.class(), "unknown");
    sim.sim.add_fault(FaultRule::next(
        "1101",
        FaultKind::OversizeAfterCommit { bytes: 8000 },
    ));
    assert_eq!(g.call("1101", q, "").await.class(), "ok");
    sim.shutdown().await;
}
