//! An open serial port: opened exclusively with the entry's line settings,
//! read through the reactor, cut into frames, turned into scans; the
//! trigger command written when a `scan.wait` arms it.

use std::path::Path;
use std::time::Instant;

use scanner_codec::framer::Framer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_serial::SerialStream;
use tracing::{debug, warn};
use ybpos_config::{Parity, Scanner};

use crate::backend::{Control, Link, ReadEnd};
use crate::common::{frame_to_scan, framer_config};
use crate::reactor::sleep_until;

/// Opens the port with the entry's line settings, exclusively.
pub(super) fn open(cfg: &Scanner, path: &Path) -> std::io::Result<SerialStream> {
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

/// Reads until cancelled or the port goes (logged here).
pub(super) async fn read_port(
    cfg: &Scanner,
    mut port: SerialStream,
    path: &Path,
    link: Link<'_>,
) -> ReadEnd {
    let mut framer = Framer::new(framer_config(cfg));
    let mut buf = [0u8; 1024];
    let mut frames = Vec::new();
    loop {
        let deadline = framer.deadline();
        tokio::select! {
            _ = link.cancel.cancelled() => return ReadEnd::Cancelled,
            _ = sleep_until(deadline), if deadline.is_some() => {
                if let Some(ev) = framer.poll_idle(Instant::now()) {
                    frames.push(ev);
                }
            }
            Some(Control::Arm) = link.control.recv() => {
                match (&cfg.trigger_command, cfg.trigger_on_wait) {
                    (Some(cmd), true) => {
                        if let Err(e) = port.write_all(cmd).await {
                            return gone(path, e);
                        }
                        debug!("Sent the trigger command.");
                    }
                    _ => debug!("Armed; no trigger_command configured."),
                }
            }
            read = port.read(&mut buf) => match read {
                Ok(0) => return gone(path, std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => framer.push(&buf[..n], Instant::now(), &mut frames),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return gone(path, e),
            },
        }
        for ev in frames.drain(..) {
            if let Some(scan) = frame_to_scan(&cfg.id, ev)
                && !link.reporter.scan(scan).await
            {
                return ReadEnd::Cancelled;
            }
        }
    }
}

fn gone(path: &Path, e: std::io::Error) -> ReadEnd {
    warn!(path = %path.display(), error = %e, "Scanner disconnected.");
    ReadEnd::Gone
}
