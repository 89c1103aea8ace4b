//! The library against a stand-in daemon on a real Unix socket: the answer
//! mapped through the socket, many threads at once, and a daemon that goes
//! away, stays silent, chatters or floods.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use NationECCode::{Config, Encoding, codes, transact};
use serde_json::{Value, json};

/// A stand-in ybposd: answers `scan.wait` by `business_type`:
/// `00001` hang up, `00002` never answer, `00003` a notification first,
/// `00004` 2 MiB without a newline, `00005` an internal error then hang up
/// (a stopping ybposd), `00006` an internal error and stay, else the
/// identity result with the
/// business type in `decode.extData` (so each caller can check its own).
fn stand_in(dir: &Path) -> PathBuf {
    let path = dir.join("api.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            std::thread::spawn(move || serve(conn));
        }
    });
    path
}

fn serve(conn: UnixStream) {
    let mut line = String::new();
    if BufReader::new(&conn).read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let req: Value = serde_json::from_str(&line).expect("the library sends JSON");
    assert_eq!(req["method"], "scan.wait");
    let bt = req["params"]["business_type"].as_str().unwrap().to_string();
    let mut w = &conn;
    match bt.as_str() {
        "00001" => {}
        "00002" => std::thread::sleep(Duration::from_secs(5)),
        "00004" => {
            let _ = w.write_all(&vec![b'x'; 2 << 20]);
        }
        "00005" | "00006" => {
            let _ = w.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32603,\"message\":\"client disconnected\",\"data\":{\"kind\":\"internal\"}}}\n");
            if bt == "00006" {
                std::thread::sleep(Duration::from_secs(4));
            }
        }
        _ => {
            if bt == "00003" {
                let _ = w.write_all(
                    b"{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"topic\":\"scan\"}}\n",
                );
            }
            let answer = json!({"jsonrpc":"2.0","id":1,"result":{
                "session_id":"ses_1",
                "credential":{"mdtrt_cert_type":"01","mdtrt_cert_no":format!("TOKEN-{bt}")},
                "decode":{"idNo":"421381198001011239","idType":"01","userName":"张三","insuOrg":"421381","extData":bt},
                "person":{}}});
            let _ = w.write_all(format!("{answer}\n").as_bytes());
        }
    }
}

fn input(bt: &str) -> Vec<u8> {
    json!({"orgId":"H1","transType":"ec.query","data":{"businessType":bt},"extra":""})
        .to_string()
        .into_bytes()
}

fn call(config: &Config, bt: &str) -> (Value, Value) {
    let reply = transact(config, Ok(&input(bt)));
    assert!(reply.bytes.len() < config.outbuf);
    let v: Value = serde_json::from_slice(&reply.bytes).expect("JSON answer");
    assert_eq!(v["code"], reply.code);
    let data = v["data"]
        .as_str()
        .map(|s| serde_json::from_str(s).expect("data is JSON text"))
        .unwrap_or(Value::Null);
    (v, data)
}

fn config(socket: &Path) -> Config {
    Config {
        socket: socket.to_path_buf(),
        ..Config::default()
    }
}

#[test]
fn the_answer_goes_through_the_socket_into_the_sdk_shape() {
    let dir = tempdir();
    let c = config(&stand_in(&dir));
    let (v, data) = call(&c, "02121");
    assert_eq!(v["code"], 0);
    assert_eq!(v["orgId"], "H1");
    assert_eq!(data["userName"], "张三");
    assert_eq!(data["ecToken"], "TOKEN-02121");
    // A notification before the answer is passed over.
    let (v, data) = call(&c, "00003");
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(data["extData"], "00003");
    // GBK out.
    let g = Config {
        encoding: Encoding::Gbk,
        ..c.clone()
    };
    let reply = transact(&g, Ok(&input("02121")));
    assert!(
        reply.bytes.windows(4).any(|w| w == b"\xd5\xc5\xc8\xfd"),
        "张三 in GBK"
    );
}

#[test]
fn many_threads_at_once_each_get_their_own_answer() {
    let dir = tempdir();
    let c = config(&stand_in(&dir));
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let bt = format!("1{t:02}{i:02}");
                    let (v, data) = call(&c, &bt);
                    assert_eq!(v["code"], 0);
                    assert_eq!(data["extData"], bt);
                    assert_eq!(data["ecToken"], format!("TOKEN-{bt}"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("no thread failed");
    }
}

#[test]
fn a_daemon_that_hangs_up_stays_silent_or_floods_gets_an_error_answer() {
    let dir = tempdir();
    let socket = stand_in(&dir);
    let (v, _) = call(&config(&socket), "00001");
    assert_eq!(v["code"], codes::DAEMON_LOST);
    assert!(v["message"].as_str().unwrap().contains("断开"));

    let quick = Config {
        timeout_ms: Some(1),
        answer_grace: Duration::from_millis(300),
        ..config(&socket)
    };
    let t = Instant::now();
    let (v, _) = call(&quick, "00002");
    assert_eq!(v["code"], codes::DAEMON_ERROR, "{v}");
    assert!(t.elapsed() < Duration::from_secs(3));

    let (v, _) = call(&config(&socket), "00004");
    assert_eq!(v["code"], codes::DAEMON_ERROR, "{v}");
    assert!(v["message"].as_str().unwrap().contains("过长"));

    // A stopping daemon cancels the wait with an internal error, then closes.
    let (v, _) = call(&config(&socket), "00005");
    assert_eq!(v["code"], codes::DAEMON_LOST, "{v}");
    // An internal error from a daemon that stays is passed on as such.
    let (v, _) = call(&config(&socket), "00006");
    assert_eq!(v["code"], -32603, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("ybposd 错误 -32603")
    );

    let (v, _) = call(&config(&dir.join("nobody-here.sock")), "02121");
    assert_eq!(v["code"], codes::DAEMON_NOT_RUNNING);
    assert!(v["message"].as_str().unwrap().contains("ybposd 服务未运行"));
}

/// A fresh folder under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> TempDir {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "ybpos-nation-ec-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    TempDir(d)
}
