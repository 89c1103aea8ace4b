//! The serial port back end: find, open, read, frame, report; recover from
//! unplugs.
//!
//! The port is read through the tokio reactor (`tokio-serial`, the
//! `serialport` crate registered with epoll), so an idle scanner costs no
//! wake-ups; the framer's idle deadline is the only timer. The device is
//! `path` (a by-id link, `/dev/ttyS0` …) or the tty whose USB device matches
//! `usb` / `serial_number` / `port_path` (read from sysfs, so a replug as a
//! new `/dev/ttyACM*` is found). When the port vanishes the scanner goes
//! `absent`; it is looked for again when a `tty` uevent arrives or the
//! configured path's folder changes (inotify), never on a timer.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use scanner_codec::framer::{Framer, FramerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_serial::SerialStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use ybpos_config::{Parity, Scanner};

use crate::common::wait_for_device;
use crate::common::{Claims, Control, Reporter, frame_to_scan, info};
use crate::hotplug::{FolderWatch, Hotplug, Wake};
use crate::scan::{ScannerEvent, ScannerState};
use crate::sysfs::{Sysfs, UsbId, binds_usb, usb_matches};

/// After a disconnect the port is looked at once more after this delay even
/// without an event (a port whose node stays, e.g. a motherboard COM port
/// that hung up); from then on only events wake the back end.
const AFTER_DISCONNECT: Duration = Duration::from_secs(1);

/// Runs one serial scanner until `cancel` fires.
pub(crate) async fn run(
    cfg: Scanner,
    tx: mpsc::Sender<ScannerEvent>,
    mut control: mpsc::Receiver<Control>,
    hotplug: Hotplug,
    claims: Claims,
    cancel: CancellationToken,
) {
    let mut reporter = Reporter::new(&cfg.id, tx);
    let mut watch = hotplug.subscribe();
    let mut folder = cfg.path.as_deref().map(FolderWatch::new);
    let sysfs = Sysfs::default();
    let mut look = true;
    loop {
        watch.drain();
        // Right after a disconnect the old node may linger (or its name be
        // taken by another device): wait for an event before opening again.
        let mut retry = reporter.retry();
        if look {
            match find(&cfg, &sysfs, &claims) {
                None => reporter.absent().await,
                Some((path, usb)) => match claims
                    .claim(&path)
                    .ok_or_else(held)
                    .and_then(|c| Ok((c, open(&cfg, &path)?)))
                {
                    Ok((_claim, port)) => {
                        reporter
                            .state(ScannerState::Connected, info(&path, usb.as_ref()))
                            .await;
                        info!(path = %path.display(), "Scanner connected.");
                        match read_port(&cfg, port, &reporter, &mut control, &cancel).await {
                            ReadEnd::Cancelled => {
                                reporter.absent().await;
                                return;
                            }
                            ReadEnd::Gone(e) => {
                                warn!(path = %path.display(), error = %e, "Scanner disconnected.");
                                reporter.absent().await;
                            }
                        }
                        look = false;
                        continue;
                    }
                    Err(e) => {
                        reporter
                            .open_failed("scanner port", &e, info(&path, usb.as_ref()))
                            .await;
                        retry = reporter.retry();
                    }
                },
            }
        } else {
            retry = Some(AFTER_DISCONNECT);
        }
        // Wait for the device to (re)appear: a tty uevent or a change in the
        // configured path's folder. Arm requests meanwhile are ignored.
        let woke = wait_for_device(
            &mut watch,
            &["tty"],
            folder.as_mut(),
            retry,
            &mut control,
            &cancel,
        )
        .await;
        if woke == Wake::Cancelled {
            return;
        }
        look = true;
    }
}

/// The node to open: the configured path, or the tty whose USB device matches.
fn find(cfg: &Scanner, sysfs: &Sysfs, claims: &Claims) -> Option<(PathBuf, Option<UsbId>)> {
    if let Some(p) = &cfg.path {
        let usb = std::fs::canonicalize(p)
            .ok()
            .and_then(|real| sysfs.usb_of_node("tty", &real));
        return Some((p.clone(), usb));
    }
    if !binds_usb(cfg) {
        return None;
    }
    sysfs.nodes("tty").into_iter().find_map(|(node, usb)| {
        let usb = usb?;
        (usb_matches(cfg, &usb) && !claims.held(&node)).then_some((node, Some(usb)))
    })
}

fn held() -> std::io::Error {
    std::io::Error::other("the device is held by another [[scanner]] entry")
}

fn open(cfg: &Scanner, path: &Path) -> std::io::Result<SerialStream> {
    let parity = match cfg.line.parity {
        Parity::None => serialport::Parity::None,
        Parity::Odd => serialport::Parity::Odd,
        Parity::Even => serialport::Parity::Even,
    };
    let data_bits = match cfg.line.data_bits {
        5 => serialport::DataBits::Five,
        6 => serialport::DataBits::Six,
        7 => serialport::DataBits::Seven,
        _ => serialport::DataBits::Eight,
    };
    let stop_bits = match cfg.line.stop_bits {
        2 => serialport::StopBits::Two,
        _ => serialport::StopBits::One,
    };
    let builder = serialport::new(path.to_string_lossy(), cfg.line.baud)
        .data_bits(data_bits)
        .parity(parity)
        .stop_bits(stop_bits)
        .flow_control(serialport::FlowControl::None);
    // Opened exclusively (TIOCEXCL): no other program reads our scanner.
    SerialStream::open(&builder).map_err(std::io::Error::from)
}

enum ReadEnd {
    Cancelled,
    Gone(std::io::Error),
}

/// The framer settings of a scanner entry.
pub(crate) fn framer_config(cfg: &Scanner) -> FramerConfig {
    FramerConfig {
        framing: match &cfg.framing {
            ybpos_config::Framing::Suffix(s) => scanner_codec::framer::Framing::Suffix(s.clone()),
            ybpos_config::Framing::StxEtx => scanner_codec::framer::Framing::StxEtx,
            ybpos_config::Framing::Idle => scanner_codec::framer::Framing::Idle,
        },
        max_frame: cfg.max_frame,
        idle_gap: cfg.idle_gap,
    }
}

async fn read_port(
    cfg: &Scanner,
    mut port: SerialStream,
    reporter: &Reporter,
    control: &mut mpsc::Receiver<Control>,
    cancel: &CancellationToken,
) -> ReadEnd {
    let mut framer = Framer::new(framer_config(cfg));
    let mut buf = [0u8; 1024];
    let mut frames = Vec::new();
    loop {
        let deadline = framer.deadline();
        tokio::select! {
            _ = cancel.cancelled() => return ReadEnd::Cancelled,
            _ = sleep_until(deadline), if deadline.is_some() => {
                if let Some(ev) = framer.poll_idle(Instant::now()) {
                    frames.push(ev);
                }
            }
            Some(Control::Arm) = control.recv() => {
                match (&cfg.trigger_command, cfg.trigger_on_wait) {
                    (Some(cmd), true) => {
                        if let Err(e) = port.write_all(cmd).await {
                            return ReadEnd::Gone(e);
                        }
                        debug!("Sent the trigger command.");
                    }
                    _ => debug!("Armed; no trigger_command configured."),
                }
            }
            read = port.read(&mut buf) => match read {
                Ok(0) => return ReadEnd::Gone(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => framer.push(&buf[..n], Instant::now(), &mut frames),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return ReadEnd::Gone(e),
            },
        }
        for ev in frames.drain(..) {
            if let Some(scan) = frame_to_scan(&cfg.id, ev)
                && !reporter.scan(scan).await
            {
                return ReadEnd::Cancelled;
            }
        }
    }
}

/// Sleeps until `deadline` (a std instant, as the sans-IO framer uses).
pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}
