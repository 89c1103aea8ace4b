//! The serial port back end: open, read, frame, report; recover from unplugs.
//!
//! The port is read through the tokio reactor (`tokio-serial`, the
//! `serialport` crate registered with epoll), so an idle scanner costs no
//! wake-ups; the framer's idle deadline is the only timer. When the port vanishes (read error, hang-up)
//! the scanner goes `absent` and the port is re-opened as soon as it can be.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_serial::SerialStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use ybpos_config::{Parity, Scanner};

use super::framer::{End, FrameEvent, Framer, FramerConfig};
use crate::scan::{Scan, ScannerEvent, ScannerInfo, ScannerState};
use crate::{aim, text};

/// Longest wait between attempts to re-open a vanished port.
const REOPEN_MAX: Duration = Duration::from_millis(250);

/// Runs one serial scanner until `cancel` fires.
pub async fn run(cfg: Scanner, tx: mpsc::Sender<ScannerEvent>, cancel: CancellationToken) {
    let mut reporter = Reporter::new(&cfg.id, tx.clone());
    let mut backoff = Duration::from_millis(20);
    loop {
        let Some(path) = resolve_path(&cfg) else {
            reporter.state(ScannerState::Absent, None).await;
            if sleep_or_cancel(&cancel, REOPEN_MAX).await {
                return;
            }
            continue;
        };
        match open(&cfg, &path) {
            Ok(port) => {
                backoff = Duration::from_millis(20);
                reporter.state(ScannerState::Connected, Some(&path)).await;
                info!(path = %path.display(), "Scanner connected.");
                match read_port(&cfg, port, &tx, &cancel).await {
                    ReadEnd::Cancelled => {
                        reporter.state(ScannerState::Absent, Some(&path)).await;
                        return;
                    }
                    ReadEnd::Gone(e) => {
                        warn!(path = %path.display(), error = %e, "Scanner disconnected.");
                        reporter.state(ScannerState::Absent, Some(&path)).await;
                    }
                }
            }
            Err(e) => {
                let state = match e.kind() {
                    std::io::ErrorKind::NotFound => ScannerState::Absent,
                    _ => ScannerState::Error(e.to_string()),
                };
                if reporter.changed(&state) {
                    debug!(path = %path.display(), error = %e, "Cannot open scanner port.");
                }
                reporter.state(state, Some(&path)).await;
            }
        }
        if sleep_or_cancel(&cancel, backoff).await {
            return;
        }
        backoff = (backoff * 2).min(REOPEN_MAX);
    }
}

/// Sleeps; true when cancelled first.
async fn sleep_or_cancel(cancel: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

fn resolve_path(cfg: &Scanner) -> Option<PathBuf> {
    if let Some(p) = &cfg.path {
        return Some(p.clone());
    }
    let want = cfg.usb.as_ref()?;
    let ports = serialport::available_ports().ok()?;
    ports.into_iter().find_map(|p| match p.port_type {
        serialport::SerialPortType::UsbPort(u)
            if u.vid == want.vid
                && want.pid.is_none_or(|pid| pid == u.pid)
                && cfg
                    .serial_number
                    .as_ref()
                    .is_none_or(|sn| u.serial_number.as_deref() == Some(sn)) =>
        {
            Some(PathBuf::from(p.port_name))
        }
        _ => None,
    })
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

async fn read_port(
    cfg: &Scanner,
    mut port: SerialStream,
    tx: &mpsc::Sender<ScannerEvent>,
    cancel: &CancellationToken,
) -> ReadEnd {
    let mut framer = Framer::new(FramerConfig {
        framing: cfg.framing.clone(),
        max_frame: cfg.max_frame,
        idle_gap: cfg.idle_gap,
    });
    let mut buf = [0u8; 1024];
    let mut frames = Vec::new();
    loop {
        let deadline = framer.deadline();
        tokio::select! {
            _ = cancel.cancelled() => return ReadEnd::Cancelled,
            _ = async { tokio::time::sleep_until(Instant::from_std(deadline.unwrap_or_else(std::time::Instant::now))).await },
                if deadline.is_some() => {
                if let Some(ev) = framer.poll_idle(std::time::Instant::now()) {
                    frames.push(ev);
                }
            }
            read = port.read(&mut buf) => match read {
                Ok(0) => return ReadEnd::Gone(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => framer.push(&buf[..n], std::time::Instant::now(), &mut frames),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return ReadEnd::Gone(e),
            },
        }
        for ev in frames.drain(..) {
            if let Some(scan) = to_scan(&cfg.id, ev)
                && tx.send(ScannerEvent::Scan(scan)).await.is_err()
            {
                return ReadEnd::Cancelled;
            }
        }
    }
}

/// Turns a framer event into a scan, or logs why it is dropped.
pub(crate) fn to_scan(scanner: &str, ev: FrameEvent) -> Option<Scan> {
    match ev {
        FrameEvent::TooLong { len } => {
            warn!(len, "Dropped an over-long frame from the scanner.");
            None
        }
        FrameEvent::Frame { data, end } => {
            if end == End::Idle {
                debug!(
                    len = data.len(),
                    "Frame ended by an idle gap, not by the configured suffix."
                );
            }
            let (symbology, body) = aim::split(&data);
            match text::decode(body) {
                Ok(text) => Some(Scan {
                    scanner: scanner.to_string(),
                    text,
                    symbology,
                    at: SystemTime::now(),
                }),
                Err(e) => {
                    warn!(len = data.len(), reason = %e, "Dropped an unreadable frame from the scanner.");
                    None
                }
            }
        }
    }
}

/// Sends state events only when the state changes.
struct Reporter {
    id: String,
    tx: mpsc::Sender<ScannerEvent>,
    last: Option<ScannerState>,
}

impl Reporter {
    fn new(id: &str, tx: mpsc::Sender<ScannerEvent>) -> Self {
        Reporter {
            id: id.to_string(),
            tx,
            last: None,
        }
    }

    fn changed(&self, s: &ScannerState) -> bool {
        self.last.as_ref() != Some(s)
    }

    async fn state(&mut self, state: ScannerState, path: Option<&Path>) {
        if !self.changed(&state) {
            return;
        }
        self.last = Some(state.clone());
        let _ = self
            .tx
            .send(ScannerEvent::State {
                scanner: self.id.clone(),
                state,
                info: ScannerInfo {
                    path: path.map(Path::to_path_buf),
                    ..ScannerInfo::default()
                },
            })
            .await;
    }
}
