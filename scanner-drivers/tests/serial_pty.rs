//! The serial back end over real pseudo-terminals: framing, idle flush,
//! over-long frames, and close-and-reopen as unplug/replug.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use scanner_drivers::{Drivers, ScannerEvent, ScannerState};
use serialport::{SerialPort, TTYPort};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use ybpos_config::{AltCodeMode, Framing, Parity, Scanner, ScannerTransport, SerialLine};

fn scanner(path: PathBuf, framing: Framing, max_frame: usize) -> Scanner {
    Scanner {
        id: "counter".into(),
        transport: ScannerTransport::Serial,
        path: Some(path),
        usb: None,
        serial_number: None,
        port_path: None,
        line: SerialLine {
            baud: 9600,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
        },
        framing,
        idle_gap: Duration::from_millis(80),
        max_frame,
        continued_timeout: Duration::from_millis(ybpos_config::DEFAULT_CONTINUED_TIMEOUT_MS),
        alt_codes: AltCodeMode::Unicode,
        trigger_on_wait: false,
        beep_on_wait: false,
        trigger_command: None,
    }
}

/// pty numbers are reused as soon as a pty closes, so a driver re-opening
/// `/dev/pts/N` could open another test's pty: the tests here run one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A pty pair whose slave side is closed again, so the driver opens it by path.
fn pty() -> (TTYPort, PathBuf) {
    let (master, slave) = TTYPort::pair().expect("pty pair");
    let path = PathBuf::from(slave.name().expect("slave name"));
    drop(slave);
    (master, path)
}

async fn next(rx: &mut mpsc::Receiver<ScannerEvent>) -> ScannerEvent {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("event within 5 s")
        .expect("channel open")
}

async fn next_scan(rx: &mut mpsc::Receiver<ScannerEvent>) -> scanner_drivers::Scan {
    loop {
        if let ScannerEvent::Scan(s) = next(rx).await {
            return s;
        }
    }
}

async fn until_state(rx: &mut mpsc::Receiver<ScannerEvent>, want: &str) {
    loop {
        if let ScannerEvent::State { state, .. } = next(rx).await
            && state.as_str() == want
        {
            return;
        }
    }
}

#[tokio::test]
async fn cr_frames_with_aim_prefix_become_scans() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (mut master, path) = pty();
    let (tx, mut rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let d = Drivers::start(
        &[scanner(path, Framing::Suffix(b"\r".to_vec()), 4096)],
        tx,
        cancel.clone(),
    );
    until_state(&mut rx, "connected").await;
    master
        .write_all(b"]Q14243754826492874240001130000\r")
        .unwrap();
    let s = next_scan(&mut rx).await;
    assert_eq!(s.scanner, "counter");
    assert_eq!(s.text, "4243754826492874240001130000");
    assert_eq!(s.symbology.unwrap().as_aim(), "]Q1");
    // Garbage is dropped, the next good frame still arrives.
    master.write_all(b"\x00\x01\x02\xff\rGOOD\r").unwrap();
    assert_eq!(next_scan(&mut rx).await.text, "GOOD");
    d.shutdown().await;
}

#[tokio::test]
async fn idle_flush_and_over_long_frames() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (mut master, path) = pty();
    let (tx, mut rx) = mpsc::channel(16);
    let d = Drivers::start(
        &[scanner(path, Framing::Idle, 32)],
        tx,
        CancellationToken::new(),
    );
    until_state(&mut rx, "connected").await;
    master.write_all(b"IDLE-FRAMED").unwrap();
    assert_eq!(next_scan(&mut rx).await.text, "IDLE-FRAMED");
    master.write_all(&[b'7'; 200]).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    master.write_all(b"AFTER").unwrap();
    assert_eq!(next_scan(&mut rx).await.text, "AFTER");
    d.shutdown().await;
}

#[tokio::test]
async fn close_and_reopen_is_unplug_and_replug() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (mut master, path) = pty();
    let (tx, mut rx) = mpsc::channel(16);
    let cfg = scanner(path.clone(), Framing::Suffix(b"\r\n".to_vec()), 4096);
    let d = Drivers::start(&[cfg], tx, CancellationToken::new());
    until_state(&mut rx, "connected").await;
    master.write_all(b"FIRST\r\n").unwrap();
    assert_eq!(next_scan(&mut rx).await.text, "FIRST");
    // Unplug: the master side goes away, the slave reads fail, the node vanishes.
    drop(master);
    until_state(&mut rx, "absent").await;
    // Replug: a new pty. Point a symlink at it, as udev's by-id links do.
    let dir = std::env::temp_dir().join(format!("ybpos-pty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("scanner");
    let (mut master2, path2) = pty();
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&path2, &link).unwrap();
    d.shutdown().await;

    let (tx, mut rx) = mpsc::channel(16);
    let d = Drivers::start(
        &[scanner(
            link.clone(),
            Framing::Suffix(b"\r\n".to_vec()),
            4096,
        )],
        tx,
        CancellationToken::new(),
    );
    until_state(&mut rx, "connected").await;
    master2.write_all(b"SECOND\r\n").unwrap();
    assert_eq!(next_scan(&mut rx).await.text, "SECOND");
    drop(master2);
    until_state(&mut rx, "absent").await;
    let (mut master3, path3) = pty();
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&path3, &link).unwrap();
    until_state(&mut rx, "connected").await;
    master3.write_all(b"THIRD\r\n").unwrap();
    assert_eq!(next_scan(&mut rx).await.text, "THIRD");
    d.shutdown().await;
    let _ = master3.clear(serialport::ClearBuffer::All);
    let _ = std::fs::remove_dir_all(dir);
    let _ = ScannerState::Absent;
}

#[tokio::test]
async fn several_scanners_at_once_each_scan_names_its_scanner() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (mut m1, p1) = pty();
    let (mut m2, p2) = pty();
    let mut a = scanner(p1, Framing::Suffix(b"\r".to_vec()), 4096);
    a.id = "left".into();
    let mut b = scanner(p2, Framing::StxEtx, 4096);
    b.id = "right".into();
    let (tx, mut rx) = mpsc::channel(16);
    let d = Drivers::start(&[a, b], tx, CancellationToken::new());
    let mut connected = 0;
    while connected < 2 {
        if let ScannerEvent::State { state, .. } = next(&mut rx).await
            && state == ScannerState::Connected
        {
            connected += 1;
        }
    }
    m2.write_all(b"\x02R-CODE\x03").unwrap();
    m1.write_all(b"L-CODE\r").unwrap();
    let mut got = [next_scan(&mut rx).await, next_scan(&mut rx).await];
    got.sort_by(|x, y| x.scanner.cmp(&y.scanner));
    assert_eq!(
        got.iter()
            .map(|s| (s.scanner.as_str(), s.text.as_str()))
            .collect::<Vec<_>>(),
        [("left", "L-CODE"), ("right", "R-CODE")]
    );
    d.shutdown().await;
}

#[tokio::test]
async fn arm_sends_the_trigger_command_when_configured() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (mut master, path) = pty();
    let mut cfg = scanner(path, Framing::Suffix(b"\r".to_vec()), 4096);
    cfg.trigger_on_wait = true;
    cfg.trigger_command = Some(b"\x16T\r".to_vec());
    let mut quiet = scanner(PathBuf::from("/nonexistent/tty"), Framing::Idle, 64);
    quiet.id = "quiet".into();
    let (tx, mut rx) = mpsc::channel(16);
    let d = Drivers::start(&[cfg, quiet], tx, CancellationToken::new());
    loop {
        if let ScannerEvent::State { scanner, state, .. } = next(&mut rx).await
            && scanner == "counter"
            && state == ScannerState::Connected
        {
            break;
        }
    }
    assert_eq!(
        d.arm("nobody"),
        Err(scanner_drivers::ArmError::UnknownScanner("nobody".into()))
    );
    assert_eq!(
        d.arm("quiet"),
        Err(scanner_drivers::ArmError::NotConfigured("quiet".into()))
    );
    d.arm("counter").unwrap();
    let got = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        master.set_timeout(Duration::from_secs(5)).expect("timeout");
        let mut buf = [0u8; 3];
        master.read_exact(&mut buf).map(|_| buf)
    })
    .await
    .unwrap()
    .expect("the trigger command within 5 s");
    assert_eq!(&got, b"\x16T\r");
    d.shutdown().await;
}
