//! Hotplug without polling: kernel uevents from netlink, and inotify on the
//! folder of a configured device path.
//!
//! One task reads `NETLINK_KOBJECT_UEVENT` (groups 1 = kernel, 2 = udevd)
//! through the tokio reactor and fans the parsed events out on a broadcast
//! channel; each back end wakes on events of its subsystem and looks for its
//! device again. When udevd runs (`/run/udev/control` exists) only its
//! messages count, because they come after the rules that set permissions
//! and `/dev/serial/by-id` links; without udevd (a minimal system, the test
//! VM) the kernel's own messages do. A path-bound serial scanner also
//! watches its folder with inotify, which catches pseudo-terminals and
//! symlinks that send no uevent.
//!
//! An idle scanner costs no wake-ups: nothing here has a timer, except the
//! degraded mode used when the netlink socket cannot be opened at all (a
//! look every [`DEGRADED_RESCAN`], logged as a warning at start).

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, setsockopt,
    socket, sockopt,
};
use scanner_codec::uevent::{self, Source, UEvent};
use tokio::io::unix::AsyncFd;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Rescan interval when kernel uevents are unavailable (degraded mode only).
pub const DEGRADED_RESCAN: Duration = Duration::from_secs(2);
/// Retry interval for a device that is present but failed to open (busy,
/// no permission yet): an error, not an idle scanner, so a timer is fine.
pub const ERROR_RETRY: Duration = Duration::from_secs(5);

/// Netlink multicast groups: kernel uevents and udevd's re-broadcast.
const GROUP_KERNEL: u32 = 1;
const GROUP_UDEV: u32 = 2;

/// The hotplug event source shared by all back ends.
#[derive(Debug, Clone)]
pub struct Hotplug {
    tx: broadcast::Sender<Arc<UEvent>>,
    live: bool,
}

impl Hotplug {
    /// Opens the uevent socket and returns the source plus the reader task
    /// (to be spawned); without netlink the source is degraded and the task
    /// is `None`.
    pub fn open(
        cancel: CancellationToken,
    ) -> (Hotplug, Option<impl Future<Output = ()> + Send + 'static>) {
        let (tx, _) = broadcast::channel(256);
        match open_socket() {
            Ok(fd) => {
                let task = read_loop(fd, tx.clone(), cancel);
                (Hotplug { tx, live: true }, Some(task))
            }
            Err(e) => {
                warn!(error = %e, rescan_s = DEGRADED_RESCAN.as_secs(),
                    "Kernel uevents are unavailable; scanners are looked for periodically instead.");
                (Hotplug { tx, live: false }, None)
            }
        }
    }

    /// A source whose only events are the [`Hotplug::inject`]ed ones (no
    /// scanners configured; tests).
    pub fn manual() -> Hotplug {
        let (tx, _) = broadcast::channel(64);
        Hotplug { tx, live: true }
    }

    /// A receiver for the events from now on.
    pub fn subscribe(&self) -> Watch {
        Watch {
            rx: self.tx.subscribe(),
            live: self.live,
        }
    }

    /// Every parsed event, unfiltered (the lab's own timing of replugs).
    pub fn events(&self) -> broadcast::Receiver<Arc<UEvent>> {
        self.tx.subscribe()
    }

    /// Sends an event to every subscriber (tests, and the lab's guest).
    pub fn inject(&self, ev: UEvent) {
        let _ = self.tx.send(Arc::new(ev));
    }
}

/// One back end's view of hotplug events.
#[derive(Debug)]
pub struct Watch {
    rx: broadcast::Receiver<Arc<UEvent>>,
    live: bool,
}

/// Why a back end woke up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// A device of interest was added, bound or changed (or events were
    /// missed): look again.
    Changed,
    /// A device went away; the sysfs path is given.
    Removed(String),
    /// Shut down.
    Cancelled,
}

impl Watch {
    /// Waits for a relevant event on one of `subsystems`, a change in the
    /// watched folder, cancellation, or — only when `retry` is given, i.e.
    /// the device is present but failed (busy, no permission) — that delay.
    pub async fn wait(
        &mut self,
        subsystems: &[&str],
        folder: Option<&mut FolderWatch>,
        retry: Option<Duration>,
        cancel: &CancellationToken,
    ) -> Wake {
        let folder_changed = async {
            match folder {
                Some(f) => f.changed().await,
                None => std::future::pending().await,
            }
        };
        let timer = match (self.live, retry) {
            (true, None) => None,
            (true, Some(r)) => Some(r),
            (false, r) => Some(r.map_or(DEGRADED_RESCAN, |r| r.min(DEGRADED_RESCAN))),
        };
        let degraded = async {
            match timer {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::pin!(folder_changed, degraded);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Wake::Cancelled,
                _ = &mut folder_changed => return Wake::Changed,
                _ = &mut degraded => return Wake::Changed,
                ev = self.rx.recv() => match ev {
                    Ok(ev) if ev.subsystem == "*" => return Wake::Changed,
                    Ok(ev) if subsystems.contains(&ev.subsystem.as_str()) => {
                        return match ev.action.as_str() {
                            "remove" | "unbind" => Wake::Removed(ev.devpath.clone()),
                            _ => Wake::Changed,
                        };
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => return Wake::Changed,
                    Err(broadcast::error::RecvError::Closed) => {
                        // The reader stopped (shutdown): nothing more will come.
                        cancel.cancelled().await;
                        return Wake::Cancelled;
                    }
                },
            }
        }
    }

    /// Drops events queued while the back end was busy.
    pub fn drain(&mut self) {
        while let Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) = self.rx.try_recv() {}
    }
}

fn open_socket() -> nix::Result<OwnedFd> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkKObjectUEvent,
    )?;
    // Bursts (a hub with several functions) must not overflow the queue.
    let _ = setsockopt(&fd, sockopt::RcvBuf, &(1 << 20));
    bind(
        fd.as_raw_fd(),
        &NetlinkAddr::new(0, GROUP_KERNEL | GROUP_UDEV),
    )?;
    Ok(fd)
}

/// True when udevd runs: its messages, not the kernel's, are then used.
fn udevd_running() -> bool {
    Path::new("/run/udev/control").exists()
}

struct Fd(OwnedFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

async fn read_loop(fd: OwnedFd, tx: broadcast::Sender<Arc<UEvent>>, cancel: CancellationToken) {
    let fd = match crate::reactor::async_fd(Fd(fd)) {
        Ok(fd) => fd,
        Err(e) => {
            warn!(error = %e, "Cannot register the uevent socket.");
            return;
        }
    };
    let mut buf = vec![0u8; uevent::MAX_MESSAGE];
    loop {
        let mut guard = tokio::select! {
            _ = cancel.cancelled() => return,
            g = fd.readable() => match g {
                Ok(g) => g,
                Err(e) => {
                    warn!(error = %e, "The uevent socket failed.");
                    return;
                }
            },
        };
        loop {
            match recv(fd.get_ref().as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => {
                    let Some(ev) = uevent::parse(&buf[..n]) else {
                        continue;
                    };
                    if ev.source == Source::Kernel && udevd_running() {
                        continue;
                    }
                    debug!(action = %ev.action, subsystem = %ev.subsystem, devpath = %ev.devpath, "uevent");
                    let _ = tx.send(Arc::new(ev));
                }
                Err(nix::errno::Errno::EAGAIN) => {
                    guard.clear_ready();
                    break;
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::ENOBUFS) => {
                    // Events were lost: tell everyone to look again.
                    warn!("uevent queue overflowed; rescanning.");
                    let _ = tx.send(Arc::new(UEvent {
                        source: Source::Kernel,
                        action: "change".into(),
                        devpath: String::new(),
                        subsystem: "*".into(),
                        devtype: None,
                        devname: None,
                    }));
                }
                Err(e) => {
                    warn!(error = %e, "Reading the uevent socket failed.");
                    return;
                }
            }
        }
    }
}

/// inotify on the folder of a configured device path (e.g. a by-id link's
/// folder, or a test's pty symlink): creation, removal and renames wake us.
#[derive(Debug)]
pub struct FolderWatch {
    dir: PathBuf,
    fd: Option<AsyncFd<InotifyFd>>,
}

#[derive(Debug)]
struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl FolderWatch {
    /// Watches the folder holding `path`, when it exists (re-tried on each wait).
    pub fn new(path: &Path) -> FolderWatch {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut w = FolderWatch { dir, fd: None };
        w.arm();
        w
    }

    fn arm(&mut self) {
        if self.fd.is_some() || !self.dir.is_dir() {
            return;
        }
        let Ok(ino) = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) else {
            return;
        };
        let flags = AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_ATTRIB
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF;
        if ino.add_watch(&self.dir, flags).is_err() {
            return;
        }
        self.fd = crate::reactor::async_fd(InotifyFd(ino)).ok();
    }

    /// Resolves when something in the folder changed.
    pub async fn changed(&mut self) {
        self.arm();
        let Some(fd) = &self.fd else {
            return std::future::pending().await;
        };
        loop {
            let Ok(mut guard) = fd.readable().await else {
                return std::future::pending().await;
            };
            match fd.get_ref().0.read_events() {
                Ok(evs) => {
                    let gone = evs.iter().any(|e| {
                        e.mask
                            .intersects(AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF)
                    });
                    if gone {
                        // The folder itself went away: watch it again when it is back.
                        self.fd = None;
                    }
                    return;
                }
                Err(nix::errno::Errno::EAGAIN) => guard.clear_ready(),
                Err(_) => return std::future::pending().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn folder_watch_sees_a_new_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("scanner");
        let mut w = FolderWatch::new(&link);
        assert!(w.fd.is_some());
        let t = tokio::spawn(async move {
            w.changed().await;
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .expect("inotify woke us")
            .unwrap();
    }

    #[tokio::test]
    async fn watch_filters_by_subsystem_and_reports_removal() {
        let hp = Hotplug::manual();
        let mut w = hp.subscribe();
        let cancel = CancellationToken::new();
        let ev = |action: &str, subsystem: &str| UEvent {
            source: Source::Kernel,
            action: action.into(),
            devpath: "/devices/x/hidraw/hidraw0".into(),
            subsystem: subsystem.into(),
            devtype: None,
            devname: None,
        };
        hp.inject(ev("add", "input"));
        hp.inject(ev("remove", "hidraw"));
        hp.inject(ev("add", "hidraw"));
        assert_eq!(
            w.wait(&["hidraw"], None, None, &cancel).await,
            Wake::Removed("/devices/x/hidraw/hidraw0".into())
        );
        assert_eq!(
            w.wait(&["hidraw"], None, None, &cancel).await,
            Wake::Changed
        );
        cancel.cancel();
        assert_eq!(
            w.wait(&["hidraw"], None, None, &cancel).await,
            Wake::Cancelled
        );
    }

    #[tokio::test(start_paused = true)]
    async fn only_an_error_state_has_a_timer() {
        let hp = Hotplug::manual();
        let mut w = hp.subscribe();
        let cancel = CancellationToken::new();
        // Idle/absent: no timer at all (an hour of virtual time passes).
        let idle = tokio::time::timeout(
            Duration::from_secs(3600),
            w.wait(&["tty"], None, None, &cancel),
        )
        .await;
        assert!(idle.is_err(), "woke without an event: {idle:?}");
        // Error state: looks again after ERROR_RETRY.
        let t0 = tokio::time::Instant::now();
        assert_eq!(
            w.wait(&["tty"], None, Some(ERROR_RETRY), &cancel).await,
            Wake::Changed
        );
        assert_eq!(t0.elapsed(), ERROR_RETRY);
    }
}
