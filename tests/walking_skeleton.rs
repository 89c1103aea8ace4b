//! The walking skeleton, end to end: a real pty as the scanner, the gateway
//! simulator on loopback, the daemon as a child process, clients on the
//! Unix socket (issue: "a real scan becomes a real identity").

use serde_json::{Value, json};
use ybpos_e2e::{Options, Terminal, until_armed};

async fn wait_and_scan(t: &mut Terminal, text: &str) -> Result<Value, Value> {
    let mut waiter = t.client().await;
    let id = waiter
        .send(
            "scan.wait",
            json!({"business_type": "02121", "timeout_ms": 10000}),
        )
        .await;
    let mut probe = t.client().await;
    until_armed(&mut probe).await;
    t.scan(text);
    waiter.answer(id).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scan_becomes_an_identity_and_payment_codes_are_named() {
    let mut t = Terminal::start(Options::new(ybpos_e2e::daemon_bin!())).await;
    let mut events = t.client().await;
    events
        .call("events.subscribe", json!({"topics": ["scan"]}))
        .await
        .unwrap();

    // 1. A fresh test code for 张三 → identity with psn_no.
    let code = t.sim.sim.issue_code("0").unwrap();
    let r = wait_and_scan(&mut t, &format!("]Q1{}", code.code))
        .await
        .expect("identity");
    assert_eq!(r["person"]["baseinfo"]["psn_no"], code.psn_no);
    assert_eq!(r["credential"]["mdtrt_cert_type"], "01");
    assert_eq!(r["decode"]["userName"], "张三");
    assert!(r["session_id"].as_str().unwrap().starts_with("ses_"));
    let ec_token = r["credential"]["mdtrt_cert_no"]
        .as_str()
        .unwrap()
        .to_string();
    let certno = r["person"]["baseinfo"]["certno"]
        .as_str()
        .unwrap()
        .to_string();
    let ev = events
        .notification(|m| m["params"]["topic"] == "scan")
        .await;
    assert_eq!(ev["params"]["class"], "medical_code");
    assert_eq!(ev["params"]["symbology"], "]Q1");
    assert_eq!(ev["params"]["scanner"], "counter");

    // 2. A WeChat payment code during a wait is named at once.
    let e = wait_and_scan(&mut t, "134567890123456789")
        .await
        .unwrap_err();
    assert_eq!(e["code"], 1002);
    assert_eq!(e["data"]["kind"], "not_medical_code");
    assert_eq!(e["data"]["class"], "wechat_pay");

    // 3. The same code again (after the de-dup window) is refused by decode.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let e = wait_and_scan(&mut t, &code.code).await.unwrap_err();
    assert_eq!(e["code"], 2004);
    assert_eq!(e["data"]["kind"], "decode_failed");
    assert_eq!(e["data"]["code"], 500161);

    // 4. Nothing scanned → scan_timeout.
    let mut c = t.client().await;
    let e = c
        .call(
            "scan.wait",
            json!({"business_type": "02121", "timeout_ms": 300}),
        )
        .await
        .unwrap_err();
    assert_eq!(e["data"]["kind"], "scan_timeout");

    // 5. Garbage from the scanner is dropped; the next scan still works.
    t.scan_bytes(b"\x00\x01\x1b[garbage\xff\xfe\r");
    let code2 = t.sim.sim.issue_code("2").unwrap();
    let r = wait_and_scan(&mut t, &code2.code)
        .await
        .expect("identity after garbage");
    assert_eq!(r["person"]["baseinfo"]["psn_no"], code2.psn_no);
    assert_eq!(r["person"]["insuinfo"][0]["insuplc_admdvs"], "110105");

    // 6. One wait per scanner.
    let mut a = t.client().await;
    let id = a
        .send(
            "scan.wait",
            json!({"business_type": "02121", "timeout_ms": 5000}),
        )
        .await;
    let mut b = t.client().await;
    until_armed(&mut b).await;
    let e = b
        .call("scan.wait", json!({"business_type": "02121"}))
        .await
        .unwrap_err();
    assert_eq!(e["data"]["kind"], "scanner_busy");
    // A client that disconnects cancels its wait, freeing the scanner.
    drop(a);
    let _ = id;
    let mut freed = false;
    for _ in 0..100 {
        let l = b.call("scanner.list", json!({})).await.unwrap();
        if l[0]["armed"] == false {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(freed, "a disconnected client's wait must be cancelled");

    // 7. Nothing personal in the logs.
    assert!(t.stop().unwrap().success());
    let logs = t.logs();
    assert!(logs.contains("Scan."), "the daemon logged scans");
    for secret in [
        &code.code,
        &code2.code,
        &ec_token,
        &certno,
        &"张三".to_string(),
        &"王五".to_string(),
    ] {
        assert!(!logs.contains(secret.as_str()), "logs contain {secret:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn id_card_and_social_security_card_work_without_a_phone() {
    let t = Terminal::start(Options::new(ybpos_e2e::daemon_bin!())).await;
    let mut c = t.client().await;
    let (certno, card_no, card_sn) = t.sim.sim.with_state(|s| {
        let p = &s.accounts[1].person;
        (
            p.certno.clone(),
            p.card_no.to_string(),
            p.card_sn.to_string(),
        )
    });
    let r = c
        .call(
            "identity.lookup",
            json!({"business_type": "01101", "credential": {"type": "id_card", "certno": certno, "psn_name": "李四"}}),
        )
        .await
        .unwrap();
    assert_eq!(r["credential"]["mdtrt_cert_type"], "02");
    assert_eq!(r["person"]["baseinfo"]["psn_name"], "李四");
    assert!(r["decode"].is_null());
    let r = c
        .call(
            "identity.lookup",
            json!({"business_type": "01101", "credential": {"type": "ss_card", "card_no": card_no, "card_sn": card_sn}}),
        )
        .await
        .unwrap();
    assert_eq!(r["credential"]["mdtrt_cert_type"], "03");
    let e = c
        .call(
            "identity.lookup",
            json!({"business_type": "01101", "credential": {"type": "id_card", "certno": "110105194912310021", "psn_name": "x"}}),
        )
        .await
        .unwrap_err();
    assert_eq!(e["data"]["kind"], "gateway_rejected");
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_on_the_socket_gets_errors_and_the_connection_survives() {
    let t = Terminal::start(Options::new(ybpos_e2e::daemon_bin!())).await;
    let mut c = t.client().await;
    c.send_raw(b"this is not json\n").await;
    let m = c.read().await.unwrap();
    assert_eq!(m["error"]["code"], -32700);
    assert_eq!(m["id"], Value::Null);
    let e = c.call("no.such.method", json!({})).await.unwrap_err();
    assert_eq!(e["code"], -32601);
    let e = c.call("scan.wait", json!({})).await.unwrap_err();
    assert_eq!(e["code"], -32602);
    assert_eq!(e["data"]["field"], "business_type");
    c.send_raw(b"{\"jsonrpc\":\"1.0\",\"id\":5,\"method\":\"system.info\"}\n")
        .await;
    let m = c.read().await.unwrap();
    assert_eq!(m["error"]["code"], -32600);
    assert_eq!(m["id"], 5);
    c.send_raw(b"[1,2,3]\n\n   \n").await;
    assert_eq!(c.read().await.unwrap()["error"]["code"], -32600);
    c.send_raw(&[0xff, 0xfe, b'\n']).await;
    assert_eq!(c.read().await.unwrap()["error"]["code"], -32700);
    // Still alive after all that.
    let info = c.call("system.info", json!({})).await.unwrap();
    assert_eq!(info["api"], "1");
    assert_eq!(info["terminal"]["fixmedins_code"], "P42130200001");
    assert_eq!(info["gateway"]["profile"], "fsi-paths");

    // An over-long line is refused and the connection closed, without buffering it.
    let mut big = t.client().await;
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..40 {
        // The daemon closes the connection after 1 MiB; later writes may fail.
        if big.try_send_raw(&chunk).await.is_err() {
            break;
        }
    }
    let m = big.read().await.unwrap();
    assert_eq!(m["error"]["code"], -32600);
    assert!(big.read().await.is_none(), "connection closed");
    // Others are unaffected.
    assert!(c.call("scanner.list", json!({})).await.is_ok());
}
