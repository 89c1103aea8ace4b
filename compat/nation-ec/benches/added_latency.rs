//! The latency `NationEcTrans` adds over a plain `scan.wait` on the socket.
//!
//! Run: `cargo bench -p ybpos-nation-ec --bench added_latency`.
//!
//! Both paths get the same answer from the same server, interleaved call by
//! call: (a) a minimal client — connect, write the `scan.wait` line, read the
//! answer line, parse it as JSON; (b) `NationEcTrans` through its C entry
//! point with a 4096-byte buffer — environment read, input decoded and
//! parsed, the same connection and answer, mapped to the SDK's shape,
//! encoded, fitted and copied out. The difference is what the library adds.
//!
//! The server is a stand-in daemon in this process that answers `scan.wait`
//! at once with ybposd's identity result for the simulator's person 0 (a scan
//! cannot be timed: its latency is the cashier's). With
//! `YBPOS_BENCH_SOCKET=/path/to/api.sock` the real ybposd answers instead
//! (e.g. `ybposd --demo`): a held wait keeps its scanner, so every measured
//! `scan.wait` is answered `scanner_busy` by the daemon's real dispatch.
//! `YBPOS_BENCH_N` sets the number of calls per path (default 20000);
//! `YBPOS_COMPAT_ENCODING=gbk` measures the GBK path.

#![allow(missing_docs, unsafe_code)] // a bench binary; unsafe only to call the C entry point

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ANSWER: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"session_id":"ses_0123456789abcdef","expires_at":"2026-11-23T10:10:00+08:00","credential":{"mdtrt_cert_type":"01","mdtrt_cert_no":"421381ec7ioqup8p1o0761820a0000f1f8b13d"},"decode":{"ecToken":"421381ec7ioqup8p1o0761820a0000f1f8b13d","idNo":"421381198001011239","idType":"01","userName":"张三","insuOrg":"421381","ecIndexNo":"E7244957FA2EBCE6827B53F9073F8874","gender":"1","birthday":"1980.01.01","nationality":"01"},"person":{"baseinfo":{"psn_no":"42000000000000000001","psn_cert_type":"01","certno":"421381198001011239","psn_name":"张三","gend":"1","naty":"01","brdy":"1980-01-01","age":46},"insuinfo":[{"balc":1000.00,"insutype":"310","psn_type":"11","psn_insu_stas":"1","psn_insu_date":"2010-01-01","paus_insu_date":null,"cvlserv_flag":"0","insuplc_admdvs":"421381","emp_name":"广水市示例有限公司"}],"idetinfo":[]}}}"#;

const INPUT: &str = r#"{"orgId":"P42130200001","transType":"ec.query","data":{"orgId":"P42130200001","businessType":"02121","operatorId":"001","operatorName":"收款员","officeId":"","officeName":"","deviceType":""},"extra":""}"#;

const LINE: &str = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"scan.wait\",\"params\":{\"business_type\":\"02121\"}}\n";

fn stand_in_daemon(path: &Path) {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).expect("bind");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut rd = BufReader::new(&conn);
                let mut line = String::new();
                while rd.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    let mut w = &conn;
                    let _ = w.write_all(ANSWER.as_bytes());
                    let _ = w.write_all(b"\n");
                    line.clear();
                }
            });
        }
    });
}

/// (a): what any client of the socket does.
fn plain(socket: &Path) -> Duration {
    let t = Instant::now();
    let s = UnixStream::connect(socket).expect("connect");
    (&s).write_all(LINE.as_bytes()).expect("write");
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).expect("read");
    let v: serde_json::Value = serde_json::from_str(&line).expect("json");
    std::hint::black_box(v);
    t.elapsed()
}

/// (b): the library's C entry point.
fn library(input: &[u8], out: &mut [u8]) -> Duration {
    let t = Instant::now();
    // SAFETY: `input` is NUL-terminated; `out` holds 4096 bytes, the
    // configured buffer.
    let st = unsafe {
        NationECCode::NationEcTrans(
            c"http://ignored".as_ptr(),
            input.as_ptr().cast(),
            out.as_mut_ptr().cast(),
        )
    };
    std::hint::black_box(st);
    t.elapsed()
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort_unstable();
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

fn us(d: Duration) -> String {
    format!("{:8.1} µs", d.as_secs_f64() * 1e6)
}

fn report(name: &str, v: &mut [Duration]) {
    println!(
        "{name:<28} p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        us(pct(v, 0.50)),
        us(pct(v, 0.90)),
        us(pct(v, 0.99)),
        us(pct(v, 0.999)),
        us(pct(v, 1.0)),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it once as a
    // smoke test with few iterations.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("YBPOS_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke { 50 } else { 20_000 });
    let (socket, real): (PathBuf, bool) = match std::env::var_os("YBPOS_BENCH_SOCKET") {
        Some(p) => (PathBuf::from(p), true),
        None => {
            let p = std::env::temp_dir().join(format!("ybpos-bench-{}.sock", std::process::id()));
            stand_in_daemon(&p);
            (p, false)
        }
    };
    // SAFETY: no other thread reads or writes the environment at this point
    // (the stand-in daemon's threads touch only their sockets).
    unsafe { std::env::set_var("YBPOS_SOCKET", &socket) };
    let _holder = real.then(|| {
        let s = UnixStream::connect(&socket).expect("connect to YBPOS_BENCH_SOCKET");
        (&s)
            .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"scan.wait\",\"params\":{\"business_type\":\"02121\",\"timeout_ms\":120000}}\n")
            .expect("hold the scanner");
        std::thread::sleep(Duration::from_millis(300));
        s
    });
    let gbk = std::env::var("YBPOS_COMPAT_ENCODING").is_ok_and(|e| e.eq_ignore_ascii_case("gbk"));
    let mut input = if gbk {
        encoding_rs::GBK.encode(INPUT).0.into_owned()
    } else {
        INPUT.as_bytes().to_vec()
    };
    input.push(0);
    let mut out = vec![0u8; 4096];

    // Warm up, and show what (b) answers.
    for _ in 0..(n / 20).max(10) {
        plain(&socket);
        library(&input, &mut out);
    }
    let answer = std::ffi::CStr::from_bytes_until_nul(&out).expect("terminated");
    let (text, _, _) = if gbk {
        encoding_rs::GBK.decode(answer.to_bytes())
    } else {
        encoding_rs::UTF_8.decode(answer.to_bytes())
    };
    let code = serde_json::from_str::<serde_json::Value>(&text)
        .map(|v| v["code"].clone())
        .unwrap_or_default();
    println!(
        "server: {}; {n} calls per path, interleaved; {}; answer code {code}, {} bytes",
        if real {
            "the real ybposd (scanner_busy)"
        } else {
            "stand-in daemon (identity result)"
        },
        if gbk { "GBK" } else { "UTF-8" },
        answer.to_bytes().len()
    );

    let mut a = Vec::with_capacity(n);
    let mut b = Vec::with_capacity(n);
    let mut diff = Vec::with_capacity(n);
    for _ in 0..n {
        let x = plain(&socket);
        let y = library(&input, &mut out);
        a.push(x);
        b.push(y);
        diff.push(y.saturating_sub(x));
    }
    report("(a) plain scan.wait", &mut a);
    report("(b) NationEcTrans", &mut b);
    report("(b) - (a), per pair", &mut diff);
    let added_p99 = pct(&mut b, 0.99).saturating_sub(pct(&mut a, 0.99));
    println!("added latency at p99 (p99(b) - p99(a)): {}", us(added_p99));

    // The library's own work without I/O: map + encode + fit.
    let result: serde_json::Value =
        serde_json::from_str::<serde_json::Value>(ANSWER).unwrap()["result"].clone();
    let config = NationECCode::Config::from_env();
    let mut m = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let (echo, req) = NationECCode::request::parse(INPUT);
        std::hint::black_box(req.expect("request"));
        let ans = NationECCode::Answer::success(echo, &result);
        let fitted = NationECCode::answer::fit(&ans, config.outbuf, config.encoding);
        std::hint::black_box(fitted);
        m.push(t.elapsed());
    }
    report("parse + map + encode + fit", &mut m);
    if !real {
        let _ = std::fs::remove_file(&socket);
    }
}
