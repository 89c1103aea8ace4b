//! The client against the simulator over real HTTP: sign-in, decode, 1101
//! and every business transaction of the catalogue, in every transport
//! profile and auth mode; sign-in at start, daily, on rejection; sign-out.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use settlement_client::Outcome;
use settlement_client::auth::Signer;
use settlement_client::decode::DecodeContext;
use settlement_client::gateway::{Gateway, GatewaySettings};
use settlement_client::transport::Endpoints;
use settlement_sim::{RunningSim, SimSettings, Simulator};
use ybpos_config::{Profile, Terminal};

/// Each test gateway is another cashier PC of the same pharmacy.
static NODE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

fn terminal() -> Terminal {
    Terminal {
        fixmedins_code: "P42130200001".into(),
        fixmedins_name: "示例大药房".into(),
        mdtrtarea_admvs: "421381".into(),
        opter: "cashier-01".into(),
        opter_name: "收银一".into(),
        opter_type: "1".into(),
        msgid_node: Some(NODE.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 100),
        terminals: 1,
    }
}

fn gateway(sim: &RunningSim, profile: Profile, signer: Signer, decode_bare: bool) -> Gateway {
    let base = match profile {
        Profile::SingleEndpoint => sim.single_endpoint_url(),
        _ => sim.base_url(),
    };
    Gateway::new(
        GatewaySettings {
            endpoints: Endpoints::new(&base, profile, BTreeMap::new()),
            decode_bare,
            mac: "00:11:22:33:44:55".into(),
            ..GatewaySettings::plain(&base, terminal())
        },
        signer,
    )
    .unwrap()
}

fn ctx() -> DecodeContext {
    DecodeContext {
        business_type: "02121".into(),
        org_id: "P42130200001".into(),
        operator_id: "cashier-01".into(),
        operator_name: "收银一".into(),
        ..DecodeContext::default()
    }
}

async fn scan_to_person(g: &Gateway, sim: &RunningSim) {
    let code = sim.sim.issue_code("0").unwrap();
    let d = match g.decode(&code.code, &ctx()).await {
        Outcome::Ok(d) => d,
        other => panic!("decode: {other:?}"),
    };
    let r = match g
        .call(
            "1101",
            json!({"data": {"mdtrt_cert_type": "01", "mdtrt_cert_no": d.ec_token(), "psn_cert_type": d.id_type(), "certno": d.id_no(), "psn_name": d.user_name()}}),
            "",
        )
        .await
    {
        Outcome::Ok(r) => r,
        other => panic!("1101: {other:?}"),
    };
    assert_eq!(r.output.unwrap()["baseinfo"]["psn_no"], code.psn_no);
    // A code decodes once.
    match g.decode(&code.code, &ctx()).await {
        Outcome::Rejected { infcode, .. } => assert_eq!(infcode, 500161),
        other => panic!("second decode: {other:?}"),
    }
}

#[tokio::test]
async fn every_profile_and_auth_mode() {
    let signers = [
        Signer::None,
        Signer::Tif {
            paasid: "paas".into(),
            secret: "tif-secret".into(),
        },
        Signer::XCa {
            key: "P42130200001".into(),
            secret: "xca-secret".into(),
        },
        Signer::ApiKey { key: "k3y".into() },
    ];
    for signer in signers {
        let sim = Simulator::new(SimSettings::default(), signer.clone())
            .bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        for profile in [
            Profile::FsiPaths,
            Profile::SingleEndpoint,
            Profile::InfnoInUrl,
        ] {
            for bare in [false, true] {
                let g = gateway(&sim, profile, signer.clone(), bare);
                scan_to_person(&g, &sim).await;
            }
        }
        // A wrong secret is refused before anything happens.
        if !matches!(signer, Signer::None) {
            let wrong = match &signer {
                Signer::Tif { paasid, .. } => Signer::Tif {
                    paasid: paasid.clone(),
                    secret: "nope".into(),
                },
                Signer::XCa { key, .. } => Signer::XCa {
                    key: key.clone(),
                    secret: "nope".into(),
                },
                _ => Signer::ApiKey { key: "nope".into() },
            };
            let g = gateway(&sim, Profile::FsiPaths, wrong, false);
            match g.sign_in().await {
                Outcome::Rejected { infcode, .. } => assert_eq!(infcode, -401),
                other => panic!("{other:?}"),
            }
        }
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn stale_sign_no_is_renewed_once() {
    let sim = Simulator::new(SimSettings::default(), Signer::None)
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let g = gateway(&sim, Profile::FsiPaths, Signer::None, false);
    let first = match g.sign_no().await {
        Outcome::Ok(s) => s,
        o => panic!("{o:?}"),
    };
    // The gateway forgets it (sign-out); the next call signs in again by itself.
    assert!(matches!(g.sign_out().await, Outcome::Ok(())));
    let certno = sim.sim.with_state(|s| s.accounts[1].person.certno.clone());
    let r = g
        .call(
            "1101",
            json!({"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": certno, "psn_name": "李四"}}),
            "",
        )
        .await;
    assert!(matches!(r, Outcome::Ok(_)), "{r:?}");
    let second = match g.sign_no().await {
        Outcome::Ok(s) => s,
        o => panic!("{o:?}"),
    };
    assert_ne!(first, second);
    sim.shutdown().await;
}

#[tokio::test]
async fn nothing_listening_is_not_sent() {
    let sim = Simulator::new(SimSettings::default(), Signer::None)
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let g = gateway(&sim, Profile::FsiPaths, Signer::None, false);
    sim.shutdown().await;
    assert!(matches!(g.sign_in().await, Outcome::NotSent { .. }));
}

/// Runs every transaction of the catalogue once or more against `sim` with
/// `g`, checking answers and the ledger as it goes; ends signed out with
/// every settlement undone and the balance back where it started.
async fn every_infno(g: &Gateway, sim: &RunningSim) {
    use common::*;
    use settlement_client::Money;
    use settlement_client::reversal::ReversalAnswer;
    let w = identify(g, sim, "0", "02121").await;
    let start = sim.sim.ledger().balance(&w.psn_no).unwrap();
    let a = w.admdvs.clone();

    // Pharmacy: pre-settle, settle, query, cancel; the cancelled sale cannot be reversed.
    let input = sale(&w, &["12.34", "7.66"]);
    let pre = ok(g.call("2101", input.clone(), &a).await);
    assert!(
        pre.output.as_ref().unwrap()["setlinfo"]
            .get("setl_id")
            .is_none()
    );
    let (m2102, out) = send(g, "2102", input, &a).await;
    let r = ok(out);
    assert_eq!(setl(&r, "medins_setl_id"), m2102.as_str());
    assert_eq!(setl(&r, "medfee_sumamt"), "20.00");
    let (setl_id, mdtrt_id) = (setl(&r, "setl_id"), setl(&r, "mdtrt_id"));
    let q = ok(g
        .call(
            "5203",
            json!({"data": {"psn_no": w.psn_no, "setl_id": setl_id, "mdtrt_id": mdtrt_id}}),
            &a,
        )
        .await);
    assert_eq!(q.output.unwrap()["setlinfo"]["refd_setl_flag"], "0");
    let c = ok(g
        .call(
            "2103",
            json!({"data": {"setl_id": setl_id, "mdtrt_id": mdtrt_id, "psn_no": w.psn_no}}),
            &a,
        )
        .await);
    assert_eq!(setl(&c, "medfee_sumamt"), "-20.00");
    assert!(matches!(
        ReversalAnswer::of(&reverse(g, &w, &m2102, "2102").await),
        ReversalAnswer::RefusedCancelled { .. }
    ));

    // Outpatient: register, visit, two fee batches, drop one, pre-settle, settle, cancel.
    let reg = ok(g
        .call("2201", json!({"data": w.cert(json!({"insutype": "310", "begntime": "2026-11-23 09:00:00", "ipt_otp_no": "MZ1", "atddr_no": "D1", "dr_name": "医生", "dept_code": "01", "dept_name": "内科", "caty": "A03"}))}), &a)
        .await);
    let mid = reg.output.unwrap()["data"]["mdtrt_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The visit query finds the registration by the hospital's own number.
    let visits = ok(g
        .call("5201", json!({"data": {"psn_no": w.psn_no}}), &a)
        .await);
    assert!(
        visits.output.unwrap()["mdtrtinfo"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["mdtrt_id"] == mid.as_str() && v["ipt_otp_no"] == "MZ1")
    );
    ok(g.call("2203", json!({"mdtrtinfo": {"mdtrt_id": mid, "psn_no": w.psn_no, "med_type": "11", "begntime": "2026-11-23 09:00:00"}, "diseinfo": []}), &a).await);
    let line = |sn: &str, b: &str, amt: &str| json!({"feedetl_sn": sn, "mdtrt_id": mid, "psn_no": w.psn_no, "chrg_bchno": b, "det_item_fee_sumamt": amt, "cnt": 1, "pric": amt, "med_list_codg": "X1"});
    let up = ok(g.call("2204", json!({"feedetail": [line("1", "B1", "50.00"), line("2", "B1", "0.01"), line("3", "B2", "9.99")]}), &a).await);
    assert_eq!(up.output.unwrap()["result"].as_array().unwrap().len(), 3);
    let fees = ok(g
        .call(
            "5204",
            json!({"data": {"psn_no": w.psn_no, "mdtrt_id": mid}}),
            &a,
        )
        .await);
    assert_eq!(
        fees.output.unwrap()["feedetail"].as_array().unwrap().len(),
        3
    );
    ok(g.call(
        "2205",
        json!({"data": {"mdtrt_id": mid, "chrg_bchno": "B2", "psn_no": w.psn_no}}),
        &a,
    )
    .await);
    let settle = json!({"data": w.cert(json!({"med_type": "11", "medfee_sumamt": "50.01", "psn_setlway": "01", "mdtrt_id": mid, "chrg_bchno": "B1", "insutype": "310", "acct_used_flag": "1"}))});
    ok(g.call("2206", settle.clone(), &a).await);
    let (m2207, out) = send(g, "2207", settle.clone(), &a).await;
    let r = ok(out);
    let sum = ["hifp_pay", "acct_pay", "psn_cash_pay"]
        .iter()
        .map(|k| Money::parse(&setl(&r, k)).unwrap())
        .fold(Money::ZERO, |x, y| x + y);
    assert_eq!(sum, Money(5001));
    let otp_setl = setl(&r, "setl_id");
    let (m2208, out) = send(
        g,
        "2208",
        json!({"data": {"setl_id": otp_setl, "mdtrt_id": mid, "psn_no": w.psn_no}}),
        &a,
    )
    .await;
    ok(out);
    // Undo the cancel, then the settlement: exactly those msgids.
    assert_eq!(
        ReversalAnswer::of(&reverse(g, &w, &m2208, "2208").await),
        ReversalAnswer::Reversed
    );
    assert_eq!(
        ReversalAnswer::of(&reverse(g, &w, &m2207, "2207").await),
        ReversalAnswer::Reversed
    );
    assert_eq!(
        ReversalAnswer::of(&reverse(g, &w, &m2207, "2207").await),
        ReversalAnswer::AlreadyReversed
    );
    // The lines are free again: settle them with the 2207A variant, cancel that.
    let r = ok(g.call("2207A", settle.clone(), &a).await);
    let again = setl(&r, "setl_id");
    ok(g.call(
        "2208",
        json!({"data": {"setl_id": again, "mdtrt_id": mid, "psn_no": w.psn_no}}),
        &a,
    )
    .await);
    ok(g.call(
        "2202",
        json!({"data": {"psn_no": w.psn_no, "mdtrt_id": mid, "ipt_otp_no": "MZ1"}}),
        &a,
    )
    .await);

    // Inpatient: admit, fees, drop a line, pre-settle, discharge, undo, discharge, settle, cancel.
    let adm = json!({"mdtrtinfo": w.cert(json!({"insutype": "310", "begntime": "2026-11-20 08:00:00", "med_type": "21", "ipt_no": "ZY1", "adm_dept_codg": "02", "adm_bed": "12"})), "diseinfo": []});
    let r = ok(g.call("2401", adm.clone(), &a).await);
    let iid = r.output.unwrap()["result"]["mdtrt_id"]
        .as_str()
        .unwrap()
        .to_string();
    let fee = |sn: &str, amt: &str| json!({"feedetl_sn": sn, "mdtrt_id": iid, "psn_no": w.psn_no, "det_item_fee_sumamt": amt, "med_list_codg": "Y1"});
    ok(g.call(
        "2403",
        json!({"adminfo": {"mdtrt_id": iid, "psn_no": w.psn_no, "med_type": "21", "adm_bed": "14"}}),
        &a,
    )
    .await);
    ok(g.call(
        "2301",
        json!({"feedetail": [fee("1", "800.00"), fee("2", "0.50")]}),
        &a,
    )
    .await);
    ok(g.call(
        "2302",
        json!({"data": {"mdtrt_id": iid, "psn_no": w.psn_no, "feedetl_sn": "2"}}),
        &a,
    )
    .await);
    let isettle = json!({"data": w.cert(json!({"medfee_sumamt": "800.00", "psn_setlway": "01", "mdtrt_id": iid, "insutype": "310", "acct_used_flag": "1", "mid_setl_flag": "0"}))});
    ok(g.call("2303", isettle.clone(), &a).await);
    let dscg = json!({"dscginfo": {"mdtrt_id": iid, "psn_no": w.psn_no, "insutype": "310", "endtime": "2026-11-23 09:00:00", "dscg_way": "1"}, "diseinfo": []});
    ok(g.call("2402", dscg.clone(), &a).await);
    ok(g.call(
        "2405",
        json!({"data": {"mdtrt_id": iid, "psn_no": w.psn_no}}),
        &a,
    )
    .await);
    ok(g.call("2402", dscg, &a).await);
    let r = ok(g.call("2304", isettle, &a).await);
    let ipt_setl = setl(&r, "setl_id");
    ok(g.call(
        "2305",
        json!({"data": {"mdtrt_id": iid, "setl_id": ipt_setl, "psn_no": w.psn_no}}),
        &a,
    )
    .await);
    ok(g.call(
        "2405",
        json!({"data": {"mdtrt_id": iid, "psn_no": w.psn_no}}),
        &a,
    )
    .await);
    ok(g.call(
        "2302",
        json!({"data": {"mdtrt_id": iid, "psn_no": w.psn_no, "feedetl_sn": "0000"}}),
        &a,
    )
    .await);
    ok(g.call(
        "2404",
        json!({"data": {"mdtrt_id": iid, "psn_no": w.psn_no}}),
        &a,
    )
    .await);
    // An admission undone by 2601.
    let (m2401, out) = send(g, "2401", adm, &a).await;
    ok(out);
    assert_eq!(
        ReversalAnswer::of(&reverse(g, &w, &m2401, "2401").await),
        ReversalAnswer::Reversed
    );

    // Everything undone: the account is whole and the books balance.
    let l = sim.sim.ledger();
    assert_eq!(l.balance(&w.psn_no), Some(start));
    l.check().unwrap();
    assert!(matches!(g.sign_out().await, Outcome::Ok(())));
    for spec in settlement_client::catalogue::CATALOGUE {
        assert!(sim.sim.calls(spec.infno) > 0, "{} never called", spec.infno);
    }
}

#[tokio::test]
async fn every_infno_in_every_profile_and_auth_mode() {
    let signers = [
        Signer::None,
        Signer::Tif {
            paasid: "paas".into(),
            secret: "tif-secret".into(),
        },
        Signer::XCa {
            key: "H42138100001".into(),
            secret: "xca-secret".into(),
        },
        Signer::ApiKey { key: "k3y".into() },
    ];
    for signer in signers {
        for profile in [
            Profile::FsiPaths,
            Profile::SingleEndpoint,
            Profile::InfnoInUrl,
        ] {
            let sim = common::start(signer.clone()).await;
            let g = common::gateway(&sim, profile, signer.clone(), false);
            every_infno(&g, &sim).await;
            sim.shutdown().await;
        }
    }
}

#[tokio::test]
async fn sign_in_at_first_use_daily_and_sign_out_on_shutdown() {
    let sim = common::start(Signer::None).await;
    let g = common::gateway(&sim, Profile::FsiPaths, Signer::None, false)
        .with_sign_in_max_age(Duration::from_millis(1000));
    assert_eq!(
        sim.sim.calls("9001"),
        0,
        "nothing is sent before the first use"
    );
    let s1 = match g.sign_no().await {
        Outcome::Ok(s) => s,
        o => panic!("{o:?}"),
    };
    assert_eq!(sim.sim.calls("9001"), 1);
    assert!(sim.sim.with_state(|s| s.is_signed_in(&s1)));
    // Within its age the sign-in is reused.
    assert!(matches!(g.sign_no().await, Outcome::Ok(ref s) if *s == s1));
    assert_eq!(sim.sim.calls("9001"), 1);
    // Past its age ("daily", shortened here) the next use signs in again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let s2 = match g.sign_no().await {
        Outcome::Ok(s) => s,
        o => panic!("{o:?}"),
    };
    assert_ne!(s1, s2);
    assert_eq!(sim.sim.calls("9001"), 2);
    // Clean shutdown: 9002 with the current sign_no; the gateway forgets it.
    assert!(matches!(g.sign_out().await, Outcome::Ok(())));
    assert_eq!(sim.sim.calls("9002"), 1);
    assert!(!sim.sim.with_state(|s| s.is_signed_in(&s2)));
    assert!(g.current_sign_in().await.is_none());
    assert_eq!(g.state().borrow().as_str(), "offline");
    // Signing out twice sends nothing.
    assert!(matches!(g.sign_out().await, Outcome::Ok(())));
    assert_eq!(sim.sim.calls("9002"), 1);
    sim.shutdown().await;
}
