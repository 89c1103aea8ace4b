//! Figure 3: `scan.wait` → identity against the simulator at zero injected
//! latency, minus the same two gateway calls (decode, 1101) made by a direct
//! client with the same gateway library.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};
use settlement_client::Outcome;
use settlement_client::auth::Signer;
use settlement_client::decode::DecodeContext;
use settlement_client::gateway::{Gateway, GatewaySettings};
use settlement_sim::{SimSettings, Simulator};
use ybpos_config::Terminal;

use crate::kit::{Pct, Rpc, ms, ms_diff, ratio, verdict};
use crate::scan::daemon_with_scanners;
use crate::{Bench, Report};

/// The gateway client a direct caller would use: the same library as the
/// daemon, as another institution (its msgids must not collide with the
/// daemon's, which the simulator refuses as duplicates).
pub fn direct_gateway(url: &str) -> Result<Gateway> {
    let settings = GatewaySettings::plain(
        url,
        Terminal {
            fixmedins_code: DIRECT_CODE.into(),
            fixmedins_name: "bench".into(),
            mdtrtarea_admvs: "421381".into(),
            opter: "b1".into(),
            opter_name: "b1".into(),
            opter_type: "1".into(),
            msgid_node: None,
            terminals: 1,
        },
    );
    Ok(Gateway::new(settings, Signer::None)?)
}

/// The direct client's institution code.
const DIRECT_CODE: &str = "P42130200009";

/// The two calls behind a `scan.wait`: decode, then 1101 with the token.
async fn direct_identity(gw: &Gateway, code: &str) -> Result<()> {
    let ctx = DecodeContext {
        business_type: "02121".into(),
        org_id: DIRECT_CODE.into(),
        operator_id: "b1".into(),
        operator_name: "b1".into(),
        ..DecodeContext::default()
    };
    let d = match gw.decode(code, &ctx).await {
        Outcome::Ok(d) => d,
        o => bail!("direct decode: {}", o.class()),
    };
    let input = json!({"data": {
        "mdtrt_cert_type": "01", "mdtrt_cert_no": d.ec_token(), "card_sn": "", "begntime": "",
        "psn_cert_type": d.id_type(), "certno": d.id_no(), "psn_name": d.user_name(),
    }});
    match gw.call("1101", input, "").await {
        Outcome::Ok(r) if r.output.is_some() => Ok(()),
        o => bail!("direct 1101: {}", o.class()),
    }
}

/// Figure 3.
pub fn identity(b: &Bench, r: &mut Report) -> Result<()> {
    let n = if b.short { 20 } else { 500 };
    let sim = b.rt.block_on(
        Simulator::new(SimSettings::default(), Signer::None).bind("127.0.0.1:0".parse()?),
    )?;
    let url = sim.base_url();
    let dir = tempfile::tempdir_in(&b.tmp)?;
    let (daemon, mut ptys) = daemon_with_scanners(b, dir.path(), &url, 1)?;
    let mut pty = ptys.remove(0);
    let gw = direct_gateway(&url)?;
    let mut waiter = Rpc::connect(&daemon.socket)?;
    let mut control = Rpc::connect(&daemon.socket)?;
    let (mut via, mut direct) = (Vec::new(), Vec::new());
    for i in 0..n + 5 {
        // Through the daemon: the wait is armed before the scan.
        let code = sim
            .sim
            .issue_code("0")
            .ok_or_else(|| anyhow::anyhow!("no code"))?;
        let id = waiter.send("scan.wait", json!({"business_type": "02121"}))?;
        armed(&mut control)?;
        let t0 = Instant::now();
        pty.write(format!("{}\r", code.code).as_bytes())?;
        let v: Value = waiter.answer(id)?;
        let t = t0.elapsed();
        if v["session_id"].as_str().is_none() {
            bail!("scan.wait gave no session: {v}");
        }
        // Directly: the same two calls, a fresh code.
        let code = sim
            .sim
            .issue_code("0")
            .ok_or_else(|| anyhow::anyhow!("no code"))?;
        let t0 = Instant::now();
        b.rt.block_on(direct_identity(&gw, &code.code))?;
        let d = t0.elapsed();
        if i >= 5 {
            via.push(t);
            direct.push(d);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let (v, d) = (Pct::of(&mut via), Pct::of(&mut direct));
    let added_p99 = v.p99.saturating_sub(d.p99);
    let t = format!(
        "{n} rounds; each: `scan.wait` armed (checked with `scanner.list`), then the scan written into the pty and \
         the clock run until the identity answer is read; then a direct client (`settlement_client::Gateway`, the \
         daemon's own gateway library, in the bench process) makes decode (1162) + 1101 for a fresh code. The \
         simulator runs in the bench process, no injected latency.\n\n\
         | path | p50 ms | p99 ms | max ms |\n|---|---|---|---|\n\
         | pty → ybposd → decode + 1101 → answer on the socket | {} | {} | {} |\n\
         | direct client: decode + 1101 (baseline) | {} | {} | {} |\n\n\
         | added p50 ms | added p99 ms | ratio p99 | goal | |\n|---|---|---|---|---|\n\
         | {} | {} | {} | ≤ +1 ms p99 | {} |\n",
        ms(v.p50),
        ms(v.p99),
        ms(v.max),
        ms(d.p50),
        ms(d.p99),
        ms(d.max),
        ms_diff(v.p50, d.p50),
        ms_diff(v.p99, d.p99),
        ratio(v.p99.as_secs_f64(), d.p99.as_secs_f64()),
        verdict(added_p99 <= Duration::from_millis(1)),
    );
    r.figure("3. `scan.wait` → identity, minus the two gateway calls", &t);
    drop(waiter);
    daemon.stop()?;
    b.rt.block_on(sim.shutdown());
    Ok(())
}

/// Polls `scanner.list` until scanner 0 is armed.
fn armed(c: &mut Rpc) -> Result<()> {
    for _ in 0..1000 {
        let v = c.call("scanner.list", json!({}))?;
        if v[0]["armed"] == true {
            return Ok(());
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    bail!("the scanner was never armed")
}
