//! The USB lab's test program: runs as /init's child inside a QEMU guest
//! (`tests/usb-lab/run.sh`) with Debian's kernel, `dummy_hcd` and configfs.
//!
//! It plays both sides of a real USB bus:
//! - the **scanner** side: a configfs gadget with three functions — a
//!   HID-POS scanner (Honeywell-style 64-byte reports, trigger/beep output
//!   report), a boot-keyboard wedge and a CDC-ACM serial port — whose
//!   reports it writes to `/dev/hidg0`, `/dev/hidg1` and `/dev/ttyGS0`;
//! - the **host** side: the project's own [`Drivers`] with three `[[scanner]]`
//!   entries, reading hidraw, libusb (kernel driver detached) and ttyACM.
//!
//! Checks, each printed as `LAB ok …` or `LAB FAIL …`: a two-report QR scan
//! over hidraw; a 112-byte scan whose full last report still says
//! "continued" (clone firmware) delivered after the quiet gap; the trigger report arriving at the gadget after `arm`; an
//! exclusive wedge scan with Alt-code Chinese (the interface bound to usbfs,
//! no input device left); a serial scan; unplug → all `absent`; replug →
//! all `connected` within 1 s of the node reappearing, and a scan on each;
//! on shutdown the keyboard goes back to usbhid. The last line is
//! `USB-LAB: PASS` or `USB-LAB: FAIL (n)`.
//!
//! Outside the guest it refuses to run (it would configure USB gadgets).

use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scanner_codec::uevent::UEvent;
use scanner_drivers::hotplug::Hotplug;
use scanner_drivers::{Drivers, Scan, ScannerEvent, ScannerState};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use ybpos_config::{AltCodeMode, Framing, Parity, Scanner, ScannerTransport, SerialLine, UsbMatch};

const GADGET: &str = "/sys/kernel/config/usb_gadget/lab";
const VID: u16 = 0x0c2e;
const PID: u16 = 0x0b87;
const SERIAL: &str = "YBLAB0001";

/// HID-POS, Honeywell/Access-IS layout (scanners.md §1.2–1.3): report 2 =
/// Byte Count, 3 AIM bytes, 56 data bytes, HHP Code ID, reserved, Continued
/// byte (64 bytes with the ID); output report 4 = trigger/beep bits.
const POS_DESC: &[u8] = &[
    0x05, 0x8c, 0x09, 0x02, 0xa1, 0x01, 0x09, 0x12, 0xa1, 0x02, 0x85, 0x02, 0x15, 0x00, 0x26, 0xff,
    0x00, 0x75, 0x08, 0x95, 0x01, 0x05, 0x01, 0x09, 0x3b, 0x81, 0x02, 0x95, 0x03, 0x05, 0x8c, 0x09,
    0xfb, 0x09, 0xfc, 0x09, 0xfd, 0x81, 0x02, 0x95, 0x38, 0x09, 0xfe, 0x82, 0x02, 0x01, 0x06, 0x66,
    0xff, 0x95, 0x01, 0x09, 0x04, 0x81, 0x02, 0x95, 0x01, 0x81, 0x03, 0x05, 0x8c, 0x25, 0x01, 0x75,
    0x01, 0x95, 0x08, 0x09, 0xff, 0x81, 0x02, 0xc0, 0x09, 0x14, 0xa1, 0x02, 0x85, 0x04, 0x75, 0x01,
    0x95, 0x08, 0x25, 0x01, 0x09, 0x00, 0x09, 0x5f, 0x09, 0x60, 0x09, 0x00, 0x09, 0x00, 0x09, 0x85,
    0x09, 0x86, 0x09, 0x00, 0x91, 0x02, 0xc0, 0xc0,
];

/// HID 1.11 Appendix B.1 boot keyboard.
const KBD_DESC: &[u8] = &[
    0x05, 0x01, 0x09, 0x06, 0xa1, 0x01, 0x05, 0x07, 0x19, 0xe0, 0x29, 0xe7, 0x15, 0x00, 0x25, 0x01,
    0x75, 0x01, 0x95, 0x08, 0x81, 0x02, 0x95, 0x01, 0x75, 0x08, 0x81, 0x03, 0x95, 0x05, 0x75, 0x01,
    0x05, 0x08, 0x19, 0x01, 0x29, 0x05, 0x91, 0x02, 0x95, 0x01, 0x75, 0x03, 0x91, 0x03, 0x95, 0x06,
    0x75, 0x08, 0x15, 0x00, 0x25, 0x65, 0x05, 0x07, 0x19, 0x00, 0x29, 0x65, 0x81, 0x00, 0xc0,
];

fn w(path: impl AsRef<Path>, data: impl AsRef<[u8]>) {
    let p = path.as_ref();
    if let Err(e) = std::fs::write(p, data) {
        panic!("write {}: {e}", p.display());
    }
}

fn setup_gadget() -> String {
    let g = Path::new(GADGET);
    std::fs::create_dir_all(g.join("strings/0x409")).unwrap();
    w(g.join("idVendor"), format!("{VID:#06x}"));
    w(g.join("idProduct"), format!("{PID:#06x}"));
    w(g.join("strings/0x409/serialnumber"), SERIAL);
    w(g.join("strings/0x409/product"), "ybpos lab scanner");
    w(g.join("strings/0x409/manufacturer"), "ybpos");
    std::fs::create_dir_all(g.join("configs/c.1")).unwrap();
    for (f, proto, sub, len, desc) in [
        ("hid.pos", 0, 0, 64, POS_DESC),
        ("hid.kbd", 1, 1, 8, KBD_DESC),
    ] {
        let d = g.join("functions").join(f);
        std::fs::create_dir_all(&d).unwrap();
        w(d.join("protocol"), proto.to_string());
        w(d.join("subclass"), sub.to_string());
        w(d.join("report_length"), len.to_string());
        w(d.join("report_desc"), desc);
    }
    std::fs::create_dir_all(g.join("functions/acm.usb0")).unwrap();
    for f in ["hid.pos", "hid.kbd", "acm.usb0"] {
        std::os::unix::fs::symlink(g.join("functions").join(f), g.join("configs/c.1").join(f))
            .unwrap();
    }
    std::fs::read_dir("/sys/class/udc")
        .unwrap()
        .flatten()
        .next()
        .expect("a UDC (dummy_hcd)")
        .file_name()
        .into_string()
        .unwrap()
}

fn plug(udc: &str) {
    w(Path::new(GADGET).join("UDC"), udc);
}

fn unplug() {
    w(Path::new(GADGET).join("UDC"), "\n");
}

fn entry(id: &str, transport: ScannerTransport) -> Scanner {
    Scanner {
        id: id.into(),
        transport,
        path: None,
        usb: Some(UsbMatch {
            vid: VID,
            pid: Some(PID),
        }),
        serial_number: None,
        port_path: None,
        line: SerialLine {
            baud: 115_200,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
        },
        framing: Framing::Suffix(b"\r".to_vec()),
        idle_gap: Duration::from_millis(200),
        max_frame: 4096,
        continued_timeout: Duration::from_millis(ybpos_config::DEFAULT_CONTINUED_TIMEOUT_MS),
        alt_codes: AltCodeMode::Unicode,
        trigger_on_wait: false,
        beep_on_wait: false,
        trigger_command: None,
    }
}

/// Everything the drivers reported, with arrival times.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(Instant, ScannerEvent)>>>);

impl Log {
    async fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&Instant, &ScannerEvent) -> Option<T>,
    ) -> Option<T> {
        let end = Instant::now() + timeout;
        let mut seen = 0;
        loop {
            {
                let log = self.0.lock().unwrap();
                for (t, e) in &log[seen..] {
                    if let Some(v) = f(t, e) {
                        return Some(v);
                    }
                }
                seen = log.len();
            }
            if Instant::now() > end {
                println!("LAB ... gave up waiting for {what}");
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn mark(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// The first event since `from` matching `f`.
    async fn after<T>(
        &self,
        from: usize,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&Instant, &ScannerEvent) -> Option<T>,
    ) -> Option<T> {
        let mut i = 0;
        self.wait(what, timeout, |t, e| {
            i += 1;
            if i <= from { None } else { f(t, e) }
        })
        .await
    }
}

fn state_of<'a>(e: &'a ScannerEvent, id: &str) -> Option<&'a ScannerState> {
    match e {
        ScannerEvent::State { scanner, state, .. } if scanner == id => Some(state),
        _ => None,
    }
}

fn scan_of<'a>(e: &'a ScannerEvent, id: &str) -> Option<&'a Scan> {
    match e {
        ScannerEvent::Scan(s) if s.scanner == id => Some(s),
        _ => None,
    }
}

struct Verdict {
    failures: u32,
}

impl Verdict {
    fn check(&mut self, ok: bool, what: &str) {
        if ok {
            println!("LAB ok   {what}");
        } else {
            println!("LAB FAIL {what}");
            self.failures += 1;
        }
    }
}

/// Writes reports to a gadget node (blocking: f_hid waits for the host to poll).
async fn gadget_write(path: &'static str, chunks: Vec<Vec<u8>>) -> std::io::Result<()> {
    let job = tokio::task::spawn_blocking(move || {
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        for c in chunks {
            f.write_all(&c)?;
        }
        Ok(())
    });
    match tokio::time::timeout(Duration::from_secs(10), job).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(std::io::Error::other(e.to_string())),
        Err(_) => Err(std::io::Error::other(format!("writing {path} timed out"))),
    }
}

/// Reads one report the host sent to a gadget node.
async fn gadget_read(path: &'static str) -> Option<Vec<u8>> {
    let job = tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::open(path).ok()?;
        let mut b = [0u8; 64];
        let n = f.read(&mut b).ok()?;
        Some(b[..n].to_vec())
    });
    tokio::time::timeout(Duration::from_secs(10), job)
        .await
        .ok()?
        .ok()?
}

/// A scan as the HID-POS gadget sends it: 56 data bytes a report, AIM in each.
fn pos_reports(code: &[u8]) -> Vec<Vec<u8>> {
    let chunks: Vec<&[u8]> = code.chunks(56).collect();
    let last = chunks.len() - 1;
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut r = vec![0x02, c.len() as u8, b']', b'Q', b'1'];
            r.extend_from_slice(c);
            r.resize(61, 0);
            r.extend_from_slice(&[b's', 0, u8::from(i < last)]);
            r
        })
        .collect()
}

/// Key reports typing `text` (ASCII letters/digits) and `alt` code points, then Enter.
fn key_reports(text: &str, alt: &[u32]) -> Vec<Vec<u8>> {
    let release = vec![0u8; 8];
    let mut v = Vec::new();
    let key = |mods: u8, k: u8| vec![mods, 0, k, 0, 0, 0, 0, 0];
    for c in text.bytes() {
        let (mods, k) = match c {
            b'a'..=b'z' => (0, 0x04 + c - b'a'),
            b'A'..=b'Z' => (0x02, 0x04 + c - b'A'),
            b'1'..=b'9' => (0, 0x1e + c - b'1'),
            b'0' => (0, 0x27),
            b'-' => (0, 0x2d),
            _ => panic!("untypeable {c}"),
        };
        v.push(key(mods, k));
        v.push(release.clone());
    }
    for cp in alt {
        v.push(key(0x04, 0));
        for d in cp.to_string().bytes() {
            let k = if d == b'0' { 0x62 } else { 0x59 + d - b'1' };
            v.push(key(0x04, k));
            v.push(key(0x04, 0));
        }
        v.push(release.clone());
    }
    v.push(key(0, 0x28));
    v.push(release);
    v
}

fn driver_of(iface: &str) -> Option<String> {
    std::fs::read_link(format!("/sys/bus/usb/devices/{iface}/driver"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
}

fn keyboard_input_devices() -> usize {
    std::fs::read_to_string("/proc/bus/input/devices")
        .unwrap_or_default()
        .split("\n\n")
        .filter(|b| b.contains("ybpos lab scanner"))
        .count()
}

/// Finds the keyboard interface (`1-1:1.N`, protocol 1).
fn kbd_iface() -> Option<String> {
    std::fs::read_dir("/sys/bus/usb/devices")
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| {
            n.contains(':')
                && std::fs::read_to_string(format!("/sys/bus/usb/devices/{n}/bInterfaceProtocol"))
                    .is_ok_and(|p| p.trim() == "01")
                && std::fs::read_to_string(format!("/sys/bus/usb/devices/{n}/bInterfaceClass"))
                    .is_ok_and(|p| p.trim() == "03")
        })
}

#[tokio::main]
async fn main() {
    if std::env::var_os("YBPOS_USB_LAB_GUEST").is_none() {
        eprintln!("usb-lab-guest runs inside the lab VM only (tests/usb-lab/run.sh).");
        std::process::exit(2);
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .with_ansi(false)
        .init();
    let started = Instant::now();
    let mut v = Verdict { failures: 0 };
    let udc = setup_gadget();

    // The test's own uevent listener: when did each node reappear?
    let cancel = CancellationToken::new();
    let (lab_hotplug, reader) = Hotplug::open(cancel.clone());
    let reader = reader.expect("netlink uevents in the guest");
    tokio::spawn(reader);
    let adds: Arc<Mutex<Vec<(Instant, UEvent)>>> = Arc::default();
    {
        let adds = Arc::clone(&adds);
        let cancel = cancel.clone();
        let mut rx = lab_hotplug.events();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    ev = rx.recv() => match ev {
                        Ok(ev) if ev.action == "add" => adds.lock().unwrap().push((Instant::now(), (*ev).clone())),
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => return,
                    }
                }
            }
        });
    }

    let mut pos = entry("pos", ScannerTransport::HidPos);
    pos.serial_number = Some(SERIAL.into());
    pos.trigger_on_wait = true;
    pos.beep_on_wait = true;
    let mut wedge = entry("wedge", ScannerTransport::HidKeyboard);
    wedge.port_path = Some("1-1".into());
    let mut acm = entry("acm", ScannerTransport::Serial);
    acm.serial_number = Some(SERIAL.into());
    let ids = ["pos", "wedge", "acm"];

    let (tx, mut rx) = mpsc::channel(256);
    let drivers = Drivers::start(&[pos, wedge, acm], tx, CancellationToken::new());
    let log = Log::default();
    {
        let log = log.clone();
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                match &e {
                    ScannerEvent::State {
                        scanner,
                        state,
                        info,
                    } => {
                        println!("event {scanner} {} {:?}", state.as_str(), info.path)
                    }
                    ScannerEvent::Scan(s) => println!(
                        "event {} scan ({} chars)",
                        s.scanner,
                        s.text.chars().count()
                    ),
                }
                log.0.lock().unwrap().push((Instant::now(), e));
            }
        });
    }

    // Absent first (nothing plugged), then plug in.
    for id in ids {
        let absent = log
            .wait(&format!("{id} absent"), Duration::from_secs(20), |_, e| {
                (state_of(e, id) == Some(&ScannerState::Absent)).then_some(())
            })
            .await;
        v.check(
            absent.is_some(),
            &format!("{id}: absent before the device is plugged in"),
        );
    }
    let plugged = Instant::now();
    plug(&udc);
    for id in ids {
        let c = log
            .wait(
                &format!("{id} connected"),
                Duration::from_secs(30),
                |t, e| (state_of(e, id) == Some(&ScannerState::Connected)).then_some(*t),
            )
            .await;
        v.check(
            c.is_some(),
            &format!(
                "{id}: connected after plug-in ({:?} after the UDC bind)",
                c.map(|t| t - plugged)
            ),
        );
    }

    // Exclusive wedge: interface bound to usbfs, no input device.
    let kif = kbd_iface();
    let drv = kif.as_deref().and_then(driver_of);
    v.check(
        drv.as_deref() == Some("usbfs"),
        &format!("wedge: keyboard interface {kif:?} is held by usbfs (kernel driver detached), driver = {drv:?}"),
    );
    v.check(
        keyboard_input_devices() == 0,
        "wedge: no input device for the scanner's keyboard (no keystroke reaches the desktop)",
    );

    // HID-POS: a 98-character 医保码-like code in two reports.
    let code: String = (0..98)
        .map(|i| (b'0' + (i * 7 % 10) as u8) as char)
        .collect();
    let mark = log.mark();
    let wr = gadget_write("/dev/hidg0", pos_reports(code.as_bytes())).await;
    let got = log
        .after(mark, "pos scan", Duration::from_secs(10), |_, e| {
            scan_of(e, "pos").map(|s| (s.text.clone(), s.symbology.map(|s| s.as_aim())))
        })
        .await;
    v.check(
        wr.is_ok() && got == Some((code.clone(), Some("]Q1".into()))),
        &format!(
            "pos: two-report QR scan over hidraw reassembled ({} chars, ]Q1) {wr:?}",
            code.len()
        ),
    );

    // Clone firmware: a 112-byte code (two full reports) whose last report
    // still has Decode Data Continued set, and nothing after it.
    let clone: String = (0..112).map(|i| (b'A' + (i % 26) as u8) as char).collect();
    let mut reports = pos_reports(clone.as_bytes());
    if let Some(last) = reports.last_mut().and_then(|r| r.last_mut()) {
        *last = 1;
    }
    let mark = log.mark();
    let sent = Instant::now();
    let wr = gadget_write("/dev/hidg0", reports).await;
    let got = log
        .after(
            mark,
            "pos clone-firmware scan",
            Duration::from_secs(10),
            |t, e| scan_of(e, "pos").map(|s| (s.text.clone(), *t)),
        )
        .await;
    v.check(
        wr.is_ok() && got.as_ref().is_some_and(|(text, _)| *text == clone),
        &format!(
            "pos: a 112-byte scan whose full last report says Continued is delivered after the quiet gap ({:?} after the write) {wr:?}",
            got.map(|(_, t)| t.saturating_duration_since(sent))
        ),
    );

    // Trigger/beep output report 4 reaches the scanner when a wait arms it.
    let reader = tokio::spawn(gadget_read("/dev/hidg0"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let armed = drivers.arm("pos");
    let out = reader.await.ok().flatten();
    v.check(
        armed.is_ok() && out.as_deref() == Some(&[0x04, 0x44][..]),
        &format!(
            "pos: arm sends output report 4 (initiate read + good-read beep): {armed:?} {out:02x?}"
        ),
    );

    // Keyboard wedge: ASCII + Alt codes 31508 35760 26412 (笔记本) + Enter.
    let mark = log.mark();
    let wr = gadget_write("/dev/hidg1", key_reports("YB-42", &[31508, 35760, 26412])).await;
    let got = log
        .after(mark, "wedge scan", Duration::from_secs(10), |_, e| {
            scan_of(e, "wedge").map(|s| s.text.clone())
        })
        .await;
    v.check(
        wr.is_ok() && got.as_deref() == Some("YB-42笔记本"),
        &format!("wedge: exclusive scan with Alt-code Chinese decoded: {got:?} {wr:?}"),
    );

    // CDC-ACM serial.
    let mark = log.mark();
    let wr = gadget_write("/dev/ttyGS0", vec![b"]Q1SERIAL-0001\r".to_vec()]).await;
    let got = log
        .after(mark, "acm scan", Duration::from_secs(10), |_, e| {
            scan_of(e, "acm").map(|s| s.text.clone())
        })
        .await;
    v.check(
        wr.is_ok() && got.as_deref() == Some("SERIAL-0001"),
        &format!("acm: serial scan over CDC-ACM: {got:?} {wr:?}"),
    );

    // Unplug: every scanner goes absent.
    let mark = log.mark();
    unplug();
    for id in ids {
        let a = log
            .after(
                mark,
                &format!("{id} absent"),
                Duration::from_secs(10),
                |_, e| (state_of(e, id) == Some(&ScannerState::Absent)).then_some(()),
            )
            .await;
        v.check(a.is_some(), &format!("{id}: absent after unplug"));
    }

    // Replug: connected again within 1 s of the device node reappearing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mark = log.mark();
    adds.lock().unwrap().clear();
    let replugged = Instant::now();
    plug(&udc);
    for (id, subsystem) in [("pos", "hidraw"), ("wedge", "usb"), ("acm", "tty")] {
        let c = log
            .after(
                mark,
                &format!("{id} reconnected"),
                Duration::from_secs(30),
                |t, e| (state_of(e, id) == Some(&ScannerState::Connected)).then_some(*t),
            )
            .await;
        let appeared = adds
            .lock()
            .unwrap()
            .iter()
            .find(|(_, e)| {
                e.subsystem == subsystem
                    && (subsystem != "usb" || e.devtype.as_deref() == Some("usb_device"))
            })
            .map(|(t, _)| *t);
        let recovery = match (c, appeared) {
            (Some(c), Some(a)) => Some(c.saturating_duration_since(a)),
            _ => None,
        };
        v.check(
            recovery.is_some_and(|r| r <= Duration::from_secs(1)),
            &format!(
                "{id}: recovered {recovery:?} after its {subsystem} node reappeared ({:?} after the UDC bind)",
                c.map(|c| c - replugged)
            ),
        );
    }

    // A scan on each after the replug.
    let mark = log.mark();
    let w1 = gadget_write("/dev/hidg0", pos_reports(b"AFTER-REPLUG-POS")).await;
    let w2 = gadget_write("/dev/hidg1", key_reports("after2", &[])).await;
    let w3 = gadget_write("/dev/ttyGS0", vec![b"AFTER-REPLUG-ACM\r".to_vec()]).await;
    for (id, want, wr) in [
        ("pos", "AFTER-REPLUG-POS", w1),
        ("wedge", "after2", w2),
        ("acm", "AFTER-REPLUG-ACM", w3),
    ] {
        let got = log
            .after(
                mark,
                &format!("{id} scan after replug"),
                Duration::from_secs(10),
                |_, e| scan_of(e, id).map(|s| s.text.clone()),
            )
            .await;
        v.check(
            wr.is_ok() && got.as_deref() == Some(want),
            &format!("{id}: scan after replug: {got:?} {wr:?}"),
        );
    }

    // Shutdown gives the keyboard back to the kernel.
    let stop = Instant::now();
    let stopped = tokio::time::timeout(Duration::from_secs(10), drivers.shutdown()).await;
    v.check(
        stopped.is_ok(),
        &format!("drivers stopped in {:?}", stop.elapsed()),
    );
    let mut back = None;
    for _ in 0..50 {
        back = kbd_iface().as_deref().and_then(driver_of);
        if back.as_deref() == Some("usbhid") && keyboard_input_devices() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    v.check(
        back.as_deref() == Some("usbhid") && keyboard_input_devices() > 0,
        &format!("wedge: keyboard given back to the kernel on exit (driver = {back:?})"),
    );
    cancel.cancel();
    println!("LAB took {:?} inside the guest", started.elapsed());
    if v.failures == 0 {
        println!("USB-LAB: PASS");
    } else {
        println!("USB-LAB: FAIL ({})", v.failures);
    }
}
