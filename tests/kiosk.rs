//! Kiosk mode (`terminal.opter_type = "2"`): envelopes and decode say so,
//! a payment code gets the patient's hint, typed ID numbers are refused,
//! and `scan.wait` has the kiosk's own default; a counter is unchanged.

use serde_json::{Value, json};
use ybpos_e2e::{Client, Options, Terminal, until_armed};

async fn start(kiosk: bool, extra: &str) -> Terminal {
    let mut o = Options::new(ybpos_e2e::daemon_bin!());
    o.log = "info".into();
    if kiosk {
        o.terminal_toml = "opter_type = \"2\"".into();
    }
    o.extra_toml = extra.into();
    Terminal::start(o).await
}

/// Waits (on its own client) for the next scan of `text`; the answer.
async fn wait_for(t: &mut Terminal, params: Value, text: &str) -> Result<Value, Value> {
    let mut w = t.client().await;
    let id = w.send("scan.wait", params).await;
    let mut probe = t.client().await;
    until_armed(&mut probe).await;
    t.scan(text);
    w.answer(id).await
}

fn id_card(t: &Terminal, idx: usize, read_from_card: Option<bool>) -> Value {
    let (certno, name) = t.sim.sim.with_state(|s| {
        let p = &s.accounts[idx].person;
        (p.certno.clone(), p.name.to_string())
    });
    let mut c = json!({"type": "id_card", "certno": certno, "psn_name": name});
    if let Some(b) = read_from_card {
        c["read_from_card"] = json!(b);
    }
    json!({"business_type": "01101", "credential": c})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kiosk_says_so_and_is_stricter() {
    let mut t = start(true, "[kiosk]\nscan_wait_ms = 1000\n").await;
    let mut c: Client = t.client().await;

    // The kiosk's own default wait (here 1 s), not the counter's 30 s.
    let e = c
        .call("scan.wait", json!({"business_type": "02121"}))
        .await
        .unwrap_err();
    assert_eq!(e["code"], 1001, "{e}");
    assert_eq!(e["data"]["timeout_ms"], 1000, "{e}");

    // A WeChat payment code: the hint speaks to the patient.
    let e = wait_for(
        &mut t,
        json!({"business_type": "02121", "timeout_ms": 10000}),
        "134567890123456789",
    )
    .await
    .unwrap_err();
    assert_eq!(e["code"], 1002, "{e}");
    assert_eq!(e["data"]["class"], "wechat_pay");
    let msg = e["message"].as_str().unwrap();
    assert!(msg.starts_with("您出示的是微信付款码"), "{msg}");
    assert!(msg.contains("打开后再扫一次"), "{msg}");

    // A 医保码: decode is told deviceType SelfService, every envelope opter_type 2.
    let code = t.sim.sim.issue_code("0").unwrap();
    let who = wait_for(
        &mut t,
        json!({"business_type": "02121", "timeout_ms": 10000}),
        &code.code,
    )
    .await
    .expect("identity");
    assert_eq!(who["credential"]["mdtrt_cert_type"], "01");
    let decode = t.sim.sim.last_request("1162").expect("a decode arrived");
    let data = decode
        .pointer("/input/data")
        .or_else(|| decode.get("data"))
        .expect("decode data");
    assert_eq!(data["deviceType"], "SelfService", "{decode}");
    let q = t.sim.sim.last_request("1101").expect("1101 arrived");
    assert_eq!(q["opter_type"], "2", "{q}");

    // Typed ID numbers are refused; read from the card they are taken;
    // social-security cards as at a counter.
    let e = c
        .call("identity.lookup", id_card(&t, 1, None))
        .await
        .unwrap_err();
    assert_eq!(e["code"], 4001, "{e}");
    assert_eq!(e["data"]["reason"], "kiosk_typed_id_number", "{e}");
    let e = c
        .call("identity.lookup", id_card(&t, 1, Some(false)))
        .await
        .unwrap_err();
    assert_eq!(e["code"], 4001, "{e}");
    let ok = c
        .call("identity.lookup", id_card(&t, 1, Some(true)))
        .await
        .expect("read from the card");
    assert_eq!(ok["credential"]["mdtrt_cert_type"], "02");
    let (card_no, card_sn) = t.sim.sim.with_state(|s| {
        let p = &s.accounts[1].person;
        (p.card_no.to_string(), p.card_sn.to_string())
    });
    let ok = c
        .call(
            "identity.lookup",
            json!({"business_type": "01101", "credential": {"type": "ss_card", "card_no": card_no, "card_sn": card_sn}}),
        )
        .await
        .expect("ss card");
    assert_eq!(ok["credential"]["mdtrt_cert_type"], "03");
    // Nothing personal reached the logs on the way.
    let logs = t.logs();
    assert!(!logs.contains(&code.code), "the code was logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kiosk_may_allow_typed_id_numbers() {
    let t = start(true, "[kiosk]\ntyped_id_numbers = true\n").await;
    let mut c = t.client().await;
    c.call("identity.lookup", id_card(&t, 2, None))
        .await
        .expect("typed ID numbers allowed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_counter_is_unchanged() {
    let mut t = start(false, "").await;
    let mut c = t.client().await;
    c.call("identity.lookup", id_card(&t, 1, None))
        .await
        .expect("a cashier may type an ID number");
    let q = t.sim.sim.last_request("1101").unwrap();
    assert_eq!(q["opter_type"], "1", "{q}");
    let e = wait_for(
        &mut t,
        json!({"business_type": "02121", "timeout_ms": 10000}),
        "134567890123456789",
    )
    .await
    .unwrap_err();
    assert_eq!(e["message"], "这是微信付款码，不是医保码，请患者打开医保码");
    let code = t.sim.sim.issue_code("0").unwrap();
    wait_for(
        &mut t,
        json!({"business_type": "02121", "timeout_ms": 10000}),
        &code.code,
    )
    .await
    .expect("identity");
    let decode = t.sim.sim.last_request("1162").unwrap();
    assert!(
        !decode.to_string().contains("deviceType"),
        "a counter sends no deviceType: {decode}"
    );
}
