//! The loopback HTTP + WebSocket API end to end (local-api.md, Transports 2):
//! the daemon as a child process serving on a free port, a real pty as the
//! scanner, the gateway simulator; clients as a browser-based HIS would be.

use std::time::Duration;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use ybpos_e2e::{Http, Options, Terminal, WsRead, parse_prometheus};

const HIS: &str = "http://his.local";

fn options() -> Options {
    let mut o = Options::new(ybpos_e2e::daemon_bin!());
    o.http = true;
    o.api_toml = format!("allowed_origins = [\"{HIS}\"]\nmax_request_bytes = 65536");
    o
}

async fn until_armed(http: &Http, armed: bool) {
    for _ in 0..500 {
        let l = http.call("scanner.list", json!({})).await.unwrap();
        if l[0]["armed"] == armed {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the scanner never became armed = {armed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn http_and_websocket_serve_the_api_and_events() {
    let mut t = Terminal::start(options()).await;
    let http = t.http();
    let token = http.token.clone();
    assert_eq!(token.len(), 64, "the daemon created a 256-bit hex token");

    // /healthz: no token needed.
    let r = http.send("GET", "/healthz", &[], None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "ok");
    assert_eq!(r.json()["gateway"], "online");
    assert_eq!(r.json()["scanners"]["connected"], 1);

    // POST /v1/rpc round trip: the same answer as on the Unix socket.
    let info = http.call("system.info", json!({})).await.unwrap();
    let mut unix = t.client().await;
    let info_unix = unix.call("system.info", json!({})).await.unwrap();
    assert_eq!(info["api"], "1");
    assert_eq!(info["terminal"], info_unix["terminal"]);
    assert_eq!(
        http.call("no.such.method", json!({})).await.unwrap_err()["code"],
        -32601
    );
    let e = http
        .call("scan.wait", json!({"business_type": "2121"}))
        .await
        .unwrap_err();
    assert_eq!(e["data"]["field"], "business_type");
    // Events need a long-lived connection.
    let e = http
        .call("events.subscribe", json!({"topics": ["scan"]}))
        .await
        .unwrap_err();
    assert_eq!(e["data"]["kind"], "invalid_request");
    assert!(e["message"].as_str().unwrap().contains("WebSocket"));
    // Garbage bodies get JSON-RPC errors with status 200.
    let r = http.post("this is not json", &[]).await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (200, json!(-32700))
    );
    let r = http.post("[1,2]", &[]).await;
    assert_eq!(r.json()["error"]["code"], -32600);
    let r = http.post("", &[]).await;
    assert_eq!(r.json()["error"]["code"], -32700);
    // A notification runs and gets 204 with no body.
    let r = http
        .post(r#"{"jsonrpc":"2.0","method":"system.info"}"#, &[])
        .await;
    assert_eq!((r.status, r.body.as_str()), (204, ""));

    // An allowed browser origin: CORS preflight (with Chrome's private
    // network access) and the request itself.
    let r = http
        .send(
            "OPTIONS",
            "/v1/rpc",
            &[
                ("origin", HIS),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "authorization,content-type",
                ),
                ("access-control-request-private-network", "true"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.header("access-control-allow-origin"), Some(HIS));
    assert_eq!(
        r.header("access-control-allow-private-network"),
        Some("true")
    );
    assert!(
        r.header("access-control-allow-headers")
            .unwrap()
            .contains("authorization")
    );
    let r = http
        .post(
            r#"{"jsonrpc":"2.0","id":"x","method":"scanner.list"}"#,
            &[("origin", HIS)],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some(HIS));
    assert_eq!(r.json()["result"][0]["id"], "counter");

    // A WebSocket as a browser opens it (?token=, Origin), subscribed to scans.
    let mut events = http
        .ws(&format!("/v1/ws?token={token}"), &[("origin", HIS)])
        .await
        .expect("WebSocket with ?token=");
    let sub = events
        .call("events.subscribe", json!({"topics": ["scan"]}))
        .await
        .unwrap();
    assert!(sub["subscription"].is_string());

    // scan.wait over another WebSocket (token in the header this time).
    let mut waiter = http
        .ws("/v1/ws", &[("authorization", &http.bearer())])
        .await
        .expect("WebSocket with Authorization");
    let id = waiter
        .send(
            "scan.wait",
            json!({"business_type": "02121", "timeout_ms": 10000}),
        )
        .await;
    until_armed(&http, true).await;
    let code = t.sim.sim.issue_code("0").unwrap();
    t.scan(&format!("]Q1{}", code.code));
    let r = waiter.answer(id).await.expect("identity over WebSocket");
    assert_eq!(r["person"]["baseinfo"]["psn_no"], code.psn_no);
    assert_eq!(r["credential"]["mdtrt_cert_type"], "01");
    let certno = r["person"]["baseinfo"]["certno"]
        .as_str()
        .unwrap()
        .to_string();
    let ec_token = r["credential"]["mdtrt_cert_no"]
        .as_str()
        .unwrap()
        .to_string();
    let ev = events
        .notification(|m| m["params"]["topic"] == "scan")
        .await;
    assert_eq!(ev["method"], "event");
    assert_eq!(ev["params"]["class"], "medical_code");
    assert_eq!(ev["params"]["scanner"], "counter");
    assert_eq!(ev["params"]["subscription"], sub["subscription"]);

    // Requests on one WebSocket run concurrently: a waiting scan.wait does
    // not hold up system.info.
    let wid = waiter
        .send(
            "scan.wait",
            json!({"business_type": "02121", "timeout_ms": 20000}),
        )
        .await;
    until_armed(&http, true).await;
    let info = waiter.call("system.info", json!({})).await.unwrap();
    assert_eq!(info["api"], "1");
    // A client that disconnects cancels its wait: the scanner is free again.
    drop(waiter);
    let _ = wid;
    until_armed(&http, false).await;

    // So does an HTTP client that gives up on a POSTed scan.wait.
    let http3 = http.clone();
    let gave_up = tokio::spawn(async move {
        http3
            .call(
                "scan.wait",
                json!({"business_type": "02121", "timeout_ms": 60000}),
            )
            .await
    });
    until_armed(&http, true).await;
    gave_up.abort();
    until_armed(&http, false).await;

    // A payment code during a wait over POST is named at once.
    let http2 = http.clone();
    let pos = tokio::spawn(async move {
        http2
            .call(
                "scan.wait",
                json!({"business_type": "02121", "timeout_ms": 10000}),
            )
            .await
    });
    until_armed(&http, true).await;
    t.scan("134567890123456789");
    let e = pos.await.unwrap().unwrap_err();
    assert_eq!(e["data"]["kind"], "not_medical_code");
    assert_eq!(e["data"]["class"], "wechat_pay");

    // Bad frames: binary and garbage get errors, the session survives.
    // (Notifications of the scans above may come first.)
    async fn next_error(ws: &mut ybpos_e2e::Ws) -> Value {
        loop {
            match ws.read().await {
                WsRead::Json(m) if m.get("method").is_some() => {}
                WsRead::Json(m) => return m,
                other => panic!("{other:?}"),
            }
        }
    }
    events.send_frame(Message::binary(vec![1u8, 2, 3])).await;
    let m = next_error(&mut events).await;
    assert_eq!(m["error"]["code"], -32600);
    assert_eq!(m["id"], Value::Null);
    events.send_frame(Message::text("{nope")).await;
    assert_eq!(next_error(&mut events).await["error"]["code"], -32700);
    assert_eq!(
        events.call("scanner.list", json!({})).await.unwrap()[0]["id"],
        "counter"
    );

    // An over-size message is refused (never answered as a request) and the
    // session closed; the daemon goes on.
    let mut big = http.ws_with_query_token().await;
    let pad = "x".repeat(70_000);
    big.send("system.info", json!({"pad": pad})).await;
    let mut saw_error = false;
    loop {
        match big.read().await {
            WsRead::Json(m) => {
                assert!(m.get("result").is_none(), "an over-size request ran: {m}");
                assert_eq!(m["error"]["code"], -32600);
                assert_eq!(m["id"], Value::Null);
                saw_error = true;
            }
            WsRead::Closed(code, _) => {
                assert_eq!(code, 1009);
                break;
            }
            WsRead::Ended => break,
        }
    }
    assert!(saw_error, "the over-size message was answered");
    assert_eq!(http.send("GET", "/healthz", &[], None).await.status, 200);

    // /metrics: valid Prometheus text with the scans and requests above.
    let r = http.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let samples = parse_prometheus(&r.body).unwrap_or_else(|e| panic!("{e}\n{}", r.body));
    let value = |name: &str, labels: &[(&str, &str)]| {
        samples
            .iter()
            .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
            .map(|s| s.value)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{}", r.body))
    };
    assert_eq!(
        value(
            "ybpos_scans_total",
            &[("scanner", "counter"), ("class", "medical_code")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "ybpos_scans_total",
            &[("scanner", "counter"), ("class", "wechat_pay")]
        ),
        1.0
    );
    assert!(
        value(
            "ybpos_api_requests_total",
            &[("method", "scan.wait"), ("outcome", "ok")]
        ) >= 1.0
    );
    assert!(
        value(
            "ybpos_api_requests_total",
            &[("method", "unknown"), ("outcome", "method_not_found")]
        ) >= 1.0
    );
    assert!(
        value(
            "ybpos_gateway_calls_total",
            &[("infno", "1162"), ("outcome", "ok")]
        ) >= 1.0
    );
    assert_eq!(value("ybpos_gateway_online", &[]), 1.0);
    assert_eq!(
        value("ybpos_scanner_connected", &[("scanner", "counter")]),
        1.0
    );
    assert!(value("ybpos_api_connections_open", &[("transport", "ws")]) >= 1.0);
    assert!(value("process_resident_memory_bytes", &[]) > 0.0);

    // Nothing secret in the logs: not the token, not the person.
    events.close().await;
    assert!(t.stop().unwrap().success());
    let logs = t.logs();
    assert!(logs.contains("HTTP API listening."));
    for secret in [&token, &code.code, &certno, &ec_token, &"张三".to_string()] {
        if let Some(line) = logs.lines().find(|l| l.contains(secret.as_str())) {
            panic!("logs contain {secret:?}: {line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_hosts_origins_and_sizes_are_checked() {
    let t = Terminal::start(options()).await;
    let http = t.http();
    let port = http.addr.port();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"system.info"}"#;
    let ok_bearer = http.bearer();

    // 401: no token, a wrong one, a malformed header, a query token on POST.
    let no_token = http.send("POST", "/v1/rpc", &[], Some(body.into())).await;
    assert_eq!(no_token.status, 401);
    assert_eq!(
        no_token.header("www-authenticate"),
        Some("Bearer realm=\"ybpos\"")
    );
    assert_eq!(no_token.json()["error"]["data"]["kind"], "unauthorized");
    let wrong = format!("Bearer {}", "0".repeat(64));
    for auth in [
        wrong.as_str(),
        "Bearer",
        "Basic dXNlcjpwYXNz",
        http.token.as_str(),
    ] {
        let r = http
            .send(
                "POST",
                "/v1/rpc",
                &[("authorization", auth)],
                Some(body.into()),
            )
            .await;
        assert_eq!(r.status, 401, "{auth}");
    }
    let r = http
        .send(
            "POST",
            &format!("/v1/rpc?token={}", http.token),
            &[],
            Some(body.into()),
        )
        .await;
    assert_eq!(r.status, 401, "?token= is for the WebSocket only");
    assert_eq!(http.send("GET", "/metrics", &[], None).await.status, 401);
    assert_eq!(
        http.send("GET", "/metrics", &[("authorization", &wrong)], None)
            .await
            .status,
        401
    );

    // 403: a foreign Host (DNS rebinding) or Origin, even with the right token.
    for host in [
        format!("evil.example:{port}"),
        format!("127.0.0.1.nip.io:{port}"),
        format!("localhost:{}", port.wrapping_add(1)),
    ] {
        let r = http
            .send(
                "POST",
                "/v1/rpc",
                &[("host", &host), ("authorization", &ok_bearer)],
                Some(body.into()),
            )
            .await;
        assert_eq!(r.status, 403, "{host}: {}", r.body);
        assert_eq!(r.json()["error"]["data"]["reason"], "host");
        let r = http.send("GET", "/healthz", &[("host", &host)], None).await;
        assert_eq!(r.status, 403, "/healthz checks Host too");
    }
    for origin in ["http://evil.example", "null", "https://his.local"] {
        let r = http.post(body, &[("origin", origin)]).await;
        assert_eq!(r.status, 403, "{origin}");
        assert_eq!(r.json()["error"]["data"]["reason"], "origin");
        assert!(r.header("access-control-allow-origin").is_none());
        // Preflights from such origins are refused too.
        let r = http
            .send(
                "OPTIONS",
                "/v1/rpc",
                &[
                    ("origin", origin),
                    ("access-control-request-method", "POST"),
                ],
                None,
            )
            .await;
        assert_eq!(r.status, 403, "preflight from {origin}");
    }
    // Loopback names with the right port pass.
    for host in [format!("localhost:{port}"), format!("[::1]:{port}")] {
        let r = http.post(body, &[("host", &host)]).await;
        assert_eq!(r.status, 200, "{host}");
    }

    // The same checks on the WebSocket upgrade.
    let tok = http.token.clone();
    let q = format!("/v1/ws?token={tok}");
    assert_eq!(http.ws("/v1/ws", &[]).await.unwrap_err(), 401);
    assert_eq!(
        http.ws(&format!("/v1/ws?token={}", "1".repeat(64)), &[])
            .await
            .unwrap_err(),
        401
    );
    assert_eq!(
        http.ws("/v1/ws", &[("authorization", &wrong)])
            .await
            .unwrap_err(),
        401
    );
    assert_eq!(
        http.ws(&q, &[("host", &format!("evil.example:{port}"))])
            .await
            .unwrap_err(),
        403
    );
    assert_eq!(
        http.ws(&q, &[("origin", "http://evil.example")])
            .await
            .unwrap_err(),
        403
    );
    let mut ok = http.ws(&q, &[("origin", HIS)]).await.expect("allowed");
    assert_eq!(ok.call("system.info", json!({})).await.unwrap()["api"], "1");

    // Over-size bodies: refused by Content-Length before reading, with 413.
    let (status, text) = http
        .raw(
            format!(
                "POST /v1/rpc HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nauthorization: {ok_bearer}\r\n\
                 content-length: 2000000\r\n\r\n{{\"jsonrpc\""
            )
            .as_bytes(),
        )
        .await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("\"invalid_request\""), "{text}");
    // … and a chunked body that grows past the limit.
    let chunk = "x".repeat(16 * 1024);
    let mut req = format!(
        "POST /v1/rpc HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nauthorization: {ok_bearer}\r\n\
         transfer-encoding: chunked\r\n\r\n"
    );
    for _ in 0..5 {
        req.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    let (status, text) = http.raw(req.as_bytes()).await;
    assert_eq!(status, 413, "{text}");
    // Under the limit is fine.
    let padded = json!({"jsonrpc": "2.0", "id": 1, "method": "system.info", "params": {"p": "y".repeat(60_000)}});
    assert_eq!(http.post(&padded.to_string(), &[]).await.status, 200);

    // Unknown paths and wrong methods.
    assert_eq!(http.get("/v2/rpc").await.status, 404);
    assert_eq!(http.get("/v1/rpc").await.status, 405);

    // Every refusal is counted.
    let r = http.get("/metrics").await;
    let samples = parse_prometheus(&r.body).unwrap();
    let refused = |reason: &str| {
        samples
            .iter()
            .filter(|s| s.name == "ybpos_api_refused_total" && s.label("reason") == Some(reason))
            .map(|s| s.value)
            .sum::<f64>()
    };
    assert!(refused("token") >= 11.0, "{}", r.body);
    assert!(refused("host") >= 7.0, "{}", r.body);
    assert!(refused("origin") >= 7.0, "{}", r.body);
    assert!(refused("too_large") >= 2.0, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_cap_and_idle_websockets() {
    let mut o = options();
    o.api_toml
        .push_str("\nmax_connections = 2\nidle_timeout_ms = 1000");
    let mut t = Terminal::start(o).await;
    let http = t.http();

    // Two WebSockets with subscriptions hold both places …
    let mut a = http.ws_with_query_token().await;
    a.call("events.subscribe", json!({"topics": ["scanner"]}))
        .await
        .unwrap();
    let mut b = http.ws_with_query_token().await;
    b.call("events.subscribe", json!({"topics": ["scanner"]}))
        .await
        .unwrap();
    // … so a third connection is answered 503 `overloaded` and closed.
    let r = http
        .post(r#"{"jsonrpc":"2.0","id":1,"method":"system.info"}"#, &[])
        .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], 5001);
    assert_eq!(r.json()["error"]["data"]["kind"], "overloaded");
    assert_eq!(r.header("retry-after"), Some("1"));

    // A subscribed WebSocket is not idle: still there after the idle timeout.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(a.call("system.info", json!({})).await.unwrap()["api"], "1");

    // Closing one frees its place.
    b.close().await;
    let mut freed = false;
    for _ in 0..100 {
        let r = http
            .post(r#"{"jsonrpc":"2.0","id":1,"method":"system.info"}"#, &[])
            .await;
        if r.status == 200 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(freed, "a closed WebSocket must free its connection slot");

    // A WebSocket that does nothing is closed after idle_timeout (1 s).
    // (The place of the last POST's connection frees a moment after it.)
    let q = format!("/v1/ws?token={}", http.token);
    let mut idle = None;
    for _ in 0..100 {
        match http.ws(&q, &[]).await {
            Ok(ws) => {
                idle = Some(ws);
                break;
            }
            Err(503) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(s) => panic!("WebSocket refused with {s}"),
        }
    }
    let mut idle = idle.expect("a WebSocket once a place is free");
    let started = std::time::Instant::now();
    match idle.read_within(Duration::from_secs(10)).await {
        Some(WsRead::Closed(1000, reason)) => assert_eq!(reason, "idle"),
        other => panic!("expected an idle close, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(900));

    // A connection that sends nothing is closed (header timeout = idle_timeout here).
    let (status, text) = http.raw(b"").await;
    assert_eq!((status, text.as_str()), (0, ""), "closed without an answer");

    // The metrics saw the refusal (retrying while the idle socket's place frees).
    let mut r = http.get("/metrics").await;
    for _ in 0..100 {
        if r.status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        r = http.get("/metrics").await;
    }
    let samples = parse_prometheus(&r.body).unwrap();
    assert!(samples.iter().any(|s| s.name == "ybpos_api_refused_total"
        && s.label("reason") == Some("overloaded")
        && s.value >= 1.0));

    // Stopping the daemon closes open WebSockets with 1001 and exits cleanly.
    let stopper = std::thread::spawn(move || {
        let st = t.stop();
        (t, st)
    });
    loop {
        match a.read().await {
            WsRead::Json(_) => {}
            WsRead::Closed(code, _) => {
                assert_eq!(code, 1001);
                break;
            }
            WsRead::Ended => panic!("closed without a close frame"),
        }
    }
    let (_t, status) = stopper.join().unwrap();
    assert!(status.unwrap().success());
}
