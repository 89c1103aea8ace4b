//! `txn.submit` cost: throughput, and the latency the daemon adds between a
//! client's request and the gateway receiving it (journal fsyncs included).
//!
//! Run: `cargo bench -p ybpos-daemon --bench txn_submit`. The gateway here is
//! a null server on loopback that answers at once, so what is measured is the
//! daemon: validation, envelope, two synced journal writes (the record as
//! `sent` before the post, the outcome after), signing, HTTP on loopback.

#![allow(missing_docs)] // criterion's macros generate undocumented items

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use ybpos_daemon::engine::{Engine, Submit};
use ybpos_daemon::events::EventBus;

/// Arrival time of the latest business request at the null gateway.
type Arrival = Arc<Mutex<Option<Instant>>>;

async fn null_gateway(arrival: Arrival) -> String {
    let app = Router::new().route(
        "/fsi/api/{*rest}",
        post(move |body: Bytes| {
            let arrival = arrival.clone();
            async move {
                let now = Instant::now();
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if v["infno"] == "9001" {
                    return r#"{"infcode":0,"output":{"signinoutb":{"sign_no":"1","sign_time":"2026-01-01 00:00:00"}}}"#.to_string();
                }
                *arrival.lock().unwrap() = Some(now);
                r#"{"infcode":0,"output":{"setlinfo":{"setl_id":"S1","medfee_sumamt":12.30,"acct_pay":2.30,"psn_cash_pay":10.00}}}"#.to_string()
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    format!("http://{addr}/fsi/api")
}

fn engine(rt: &tokio::runtime::Runtime, dir: &std::path::Path, arrival: Arrival) -> Arc<Engine> {
    rt.block_on(async {
        let url = null_gateway(arrival).await;
        common::engine(&url, dir, Duration::from_secs(10), EventBus::default()).await
    })
}

fn sale(n: u64) -> Submit {
    let input: Map<String, Value> = serde_json::from_value(json!({
        "druginfo": {"psn_no": "42000000000000000001", "mdtrt_cert_type": "01", "mdtrt_cert_no": "421381ectoken",
                     "medfee_sumamt": format!("{}.30", n % 1000), "insutype": "310", "med_type": "41", "acct_used_flag": "1"},
        "drugdetail": [{"feedetl_sn": format!("{n}"), "med_list_codg": "X01", "det_item_fee_sumamt": "12.30"}],
    }))
    .unwrap();
    Submit {
        client_ref: format!("bench-{n}"),
        infno: "2102".into(),
        session_id: None,
        insuplc_admdvs: Some("421381".into()),
        input,
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let arrival: Arrival = Arc::default();
    let e = engine(&rt, dir.path(), arrival.clone());
    let mut n = 0u64;

    // Added latency: submit start → the gateway has the request.
    let mut lat = Vec::new();
    for _ in 0..500 {
        n += 1;
        let s = sale(n);
        let t0 = Instant::now();
        let r = rt.block_on(e.submit(s)).unwrap();
        assert_eq!(r.state, ybpos_daemon::engine::machine::State::Succeeded);
        let at = arrival.lock().unwrap().take().unwrap();
        lat.push(at.duration_since(t0));
    }
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q) as usize];
    println!(
        "txn.submit added latency (submit → gateway request, 1 synced journal write before it leaves): p50 {:?}  p90 {:?}  p99 {:?}  max {:?}",
        p(0.5),
        p(0.9),
        p(0.99),
        lat[lat.len() - 1]
    );

    let mut g = c.benchmark_group("txn_submit");
    g.sample_size(30);
    g.bench_function("sequential_2102_null_gateway", |b| {
        b.iter(|| {
            n += 1;
            rt.block_on(e.submit(sale(n))).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
