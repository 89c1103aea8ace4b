//! The client against the simulator over real HTTP: sign-in, decode and 1101
//! in every transport profile and auth mode.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use settlement_client::Outcome;
use settlement_client::auth::Signer;
use settlement_client::decode::DecodeContext;
use settlement_client::gateway::{Gateway, GatewaySettings};
use settlement_client::http::HttpSettings;
use settlement_client::sim::{RunningSim, SimSettings, Simulator};
use settlement_client::transport::Endpoints;
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
    }
}

fn gateway(sim: &RunningSim, profile: Profile, signer: Signer, decode_bare: bool) -> Gateway {
    let base = match profile {
        Profile::SingleEndpoint => sim.single_endpoint_url(),
        _ => sim.base_url(),
    };
    Gateway::new(
        GatewaySettings {
            terminal: terminal(),
            endpoints: Endpoints::new(&base, profile, BTreeMap::new()),
            http: HttpSettings {
                connect_timeout: Duration::from_secs(2),
                request_timeout: Duration::from_secs(5),
                max_response_bytes: 1 << 20,
                ca_pem: None,
            },
            recer_sys_code: "FSI_LOCAL".into(),
            infver: "V1.0".into(),
            dev_no: None,
            decode_bare,
            mac: "00:11:22:33:44:55".into(),
            ip: "127.0.0.1".into(),
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
