//! Shared helpers for the client-against-simulator tests.
#![allow(dead_code, missing_docs)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use settlement_client::auth::Signer;
use settlement_client::decode::DecodeContext;
use settlement_client::envelope::Response;
use settlement_client::gateway::{Gateway, GatewaySettings};
use settlement_client::http::HttpSettings;
use settlement_client::transport::Endpoints;
use settlement_client::{MsgId, Outcome};
use settlement_sim::{RunningSim, SimSettings, Simulator};
use ybpos_config::{Profile, Terminal};

/// Each test gateway is another cashier PC of the same hospital.
static NODE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

pub fn terminal() -> Terminal {
    Terminal {
        fixmedins_code: "H42138100001".into(),
        fixmedins_name: "示例医院".into(),
        mdtrtarea_admvs: "421381".into(),
        opter: "cashier-01".into(),
        opter_name: "收银一".into(),
        opter_type: "1".into(),
        msgid_node: Some(NODE.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 100),
        terminals: 1,
    }
}

pub fn http(request_timeout: Duration, max: usize, ca_pem: Option<Vec<u8>>) -> HttpSettings {
    HttpSettings {
        connect_timeout: Duration::from_secs(2),
        request_timeout,
        max_response_bytes: max,
        ca_pem,
    }
}

pub fn settings(base: &str, profile: Profile, http: HttpSettings, bare: bool) -> GatewaySettings {
    GatewaySettings {
        endpoints: Endpoints::new(base, profile, BTreeMap::new()),
        http,
        decode_bare: bare,
        mac: "00:11:22:33:44:55".into(),
        ..GatewaySettings::plain(base, terminal())
    }
}

pub fn base_for(sim: &RunningSim, profile: Profile) -> String {
    match profile {
        Profile::SingleEndpoint => sim.single_endpoint_url(),
        _ => sim.base_url(),
    }
}

pub fn gateway(sim: &RunningSim, profile: Profile, signer: Signer, bare: bool) -> Gateway {
    let http = http(Duration::from_secs(5), 1 << 20, None);
    Gateway::new(
        settings(&base_for(sim, profile), profile, http, bare),
        signer,
    )
    .unwrap()
}

pub async fn start(signer: Signer) -> RunningSim {
    Simulator::new(SimSettings::default(), signer)
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

pub fn ctx(business_type: &str) -> DecodeContext {
    DecodeContext {
        business_type: business_type.into(),
        org_id: "H42138100001".into(),
        operator_id: "cashier-01".into(),
        operator_name: "收银一".into(),
        ..DecodeContext::default()
    }
}

/// The person as 1101 returned them, with the credential to use.
#[derive(Debug, Clone)]
pub struct Who {
    pub psn_no: String,
    pub admdvs: String,
    pub token: String,
}

impl Who {
    /// `mdtrt_cert_type` 01 + ecToken, merged into `v`.
    pub fn cert(&self, mut v: Value) -> Value {
        let m = v.as_object_mut().unwrap();
        m.insert("psn_no".into(), self.psn_no.clone().into());
        m.insert("mdtrt_cert_type".into(), "01".into());
        m.insert("mdtrt_cert_no".into(), self.token.clone().into());
        v
    }
}

/// Scan (issue + decode) and 1101 for test person `who`.
pub async fn identify(g: &Gateway, sim: &RunningSim, who: &str, bt: &str) -> Who {
    let code = sim.sim.issue_code(who).unwrap();
    let d = match g.decode(&code.code, &ctx(bt)).await {
        Outcome::Ok(d) => d,
        other => panic!("decode: {other:?}"),
    };
    let r = ok(g
        .call(
            "1101",
            json!({"data": {"mdtrt_cert_type": "01", "mdtrt_cert_no": d.ec_token(), "psn_cert_type": d.id_type(), "certno": d.id_no(), "psn_name": d.user_name()}}),
            "",
        )
        .await);
    let out = r.output.unwrap();
    assert_eq!(out["baseinfo"]["psn_no"], code.psn_no.as_str());
    Who {
        psn_no: code.psn_no,
        admdvs: out["insuinfo"][0]["insuplc_admdvs"]
            .as_str()
            .unwrap()
            .to_string(),
        token: d.ec_token().to_string(),
    }
}

pub fn ok(o: Outcome<Response>) -> Response {
    match o {
        Outcome::Ok(r) => r,
        other => panic!("expected Ok, got {other:?}"),
    }
}

pub fn rejected(o: Outcome<Response>) -> String {
    match o {
        Outcome::Rejected { err_msg, .. } => err_msg,
        other => panic!("expected Rejected, got {other:?}"),
    }
}

/// Sends through prepare + send (as the money engine does) so the msgid is known.
pub async fn send(
    g: &Gateway,
    infno: &str,
    input: Value,
    admdvs: &str,
) -> (MsgId, Outcome<Response>) {
    let sign_no = match g.sign_no().await {
        Outcome::Ok(s) => s,
        other => panic!("sign-in: {other:?}"),
    };
    let p = g.prepare(infno, input, admdvs, &sign_no).unwrap();
    let out = g.send(&p).await;
    (p.msgid, out)
}

/// 2601 of `omsgid`.
pub async fn reverse(g: &Gateway, w: &Who, omsgid: &MsgId, oinfno: &str) -> Outcome<Response> {
    g.call(
        "2601",
        json!({"data": {"psn_no": w.psn_no, "omsgid": omsgid.as_str(), "oinfno": oinfno}}),
        &w.admdvs,
    )
    .await
}

pub fn setl(r: &Response, k: &str) -> String {
    let v = &r.output.as_ref().unwrap()["setlinfo"][k];
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

/// A pharmacy sale input for `w` of `lines` (amount strings).
pub fn sale(w: &Who, lines: &[&str]) -> Value {
    let total = lines
        .iter()
        .map(|a| settlement_client::Money::parse(a).unwrap())
        .fold(settlement_client::Money::ZERO, |a, b| a + b);
    let detail: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, a)| json!({"feedetl_sn": format!("{}", i + 1), "med_list_codg": "XA01", "det_item_fee_sumamt": a, "cnt": 1, "pric": a}))
        .collect();
    json!({
        "druginfo": w.cert(json!({"begntime": "2026-11-23 10:00:00", "medfee_sumamt": total.to_json(), "insutype": "310", "acct_used_flag": "1", "med_type": "41"})),
        "drugdetail": detail,
    })
}
