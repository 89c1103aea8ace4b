//! Serial scanners (RS-232, USB virtual COM): find, open, read, frame,
//! report; recover from unplugs.
//!
//! The port is read through the tokio reactor (`tokio-serial`, the
//! `serialport` crate registered with epoll), so an idle scanner costs no
//! wake-ups; the framer's idle deadline is the only timer. The device is
//! `path` (a by-id link, `/dev/ttyS0` …) or the tty whose USB device matches
//! `usb` / `serial_number` / `port_path` (read from sysfs, so a replug as a
//! new `/dev/ttyACM*` is found). When the port vanishes the scanner goes
//! `absent`; it is looked for again when a `tty` uevent arrives or the
//! configured path's folder changes (inotify), never on a timer.
//!
//! - [`framer`]: the sans-IO framer (suffix, STX…ETX, idle gap), from
//!   `scanner-codec`.
//! - `find`: which tty is this entry's (path, or USB binding via sysfs).
//! - `device`: opening the port exclusively and reading it into scans.

mod device;
mod find;

use std::path::PathBuf;
use std::time::Duration;

use tokio_serial::SerialStream;
use tracing::info;
use ybpos_config::Scanner;

pub use scanner_codec::framer;
pub use scanner_codec::framer::{End, FrameEvent, Framer, FramerConfig, Framing};

use crate::backend::{BackendCtx, Device, Link, ReadEnd};
use crate::common::{Claim, Claims, Reporter, info};
use crate::hotplug::FolderWatch;
use crate::scan::ScannerInfo;
use crate::sysfs::Sysfs;

/// After a disconnect the port is looked at once more after this delay even
/// without an event (a port whose node stays, e.g. a motherboard COM port
/// that hung up); from then on only events wake the back end.
const AFTER_DISCONNECT: Duration = Duration::from_secs(1);

/// Runs one serial scanner until `ctx.cancel` fires.
pub(crate) async fn run(ctx: BackendCtx) {
    let dev = Serial {
        folder: ctx.cfg.path.as_deref().map(FolderWatch::new),
        cfg: ctx.cfg.clone(),
        claims: ctx.claims.clone(),
        sysfs: Sysfs::default(),
    };
    crate::backend::run(ctx, dev).await;
}

/// A serial scanner entry, as the shared back-end loop drives it.
struct Serial {
    cfg: Scanner,
    claims: Claims,
    sysfs: Sysfs,
    /// inotify on the configured path's folder (pseudo-terminals and
    /// symlinks send no uevent).
    folder: Option<FolderWatch>,
}

/// An open port, with the claim that keeps other entries off it.
struct Open {
    port: SerialStream,
    path: PathBuf,
    _claim: Claim,
}

impl Device for Serial {
    type Conn = Open;
    const SUBSYSTEMS: &'static [&'static str] = &["tty"];
    const AFTER_DISCONNECT: Option<Duration> = Some(AFTER_DISCONNECT);

    async fn look(&mut self, reporter: &mut Reporter) -> Option<(Open, ScannerInfo)> {
        let Some((path, usb)) = find::find(&self.cfg, &self.sysfs, &self.claims) else {
            reporter.absent().await;
            return None;
        };
        let opened = self
            .claims
            .claim(&path)
            .ok_or_else(find::held)
            .and_then(|c| Ok((c, device::open(&self.cfg, &path)?)));
        match opened {
            Ok((claim, port)) => {
                info!(path = %path.display(), "Scanner connected.");
                let info = info(&path, usb.as_ref());
                Some((
                    Open {
                        port,
                        path,
                        _claim: claim,
                    },
                    info,
                ))
            }
            Err(e) => {
                reporter
                    .open_failed("scanner port", &e, info(&path, usb.as_ref()))
                    .await;
                None
            }
        }
    }

    async fn read(&mut self, conn: Open, link: Link<'_>) -> ReadEnd {
        device::read_port(&self.cfg, conn.port, &conn.path, link).await
    }

    fn folder(&mut self) -> Option<&mut FolderWatch> {
        self.folder.as_mut()
    }
}
