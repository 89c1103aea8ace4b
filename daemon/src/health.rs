//! Health: proof that the daemon's core answers, for systemd's watchdog,
//! the `STATUS=` line of `systemctl status`, and `GET /healthz`.
//!
//! The core is three loops, each asked to answer within a deadline:
//! - the journal's threads (a no-op on the writing thread, which group
//!   commit keeps busy, and a count query on the reading one: both run and
//!   SQLite answers);
//! - the scan hub (its event loop answers a probe between scanner events,
//!   and takes the hub's lock);
//! - the API loop (the Unix socket's accept loop answers a probe).
//!
//! `WATCHDOG=1` is sent only when all three answered ([`supervise`]); a
//! frozen part is named in the log and in `STATUS=`, and systemd restarts
//! the daemon when `WatchdogSec=` passes. The network is not part of it: a
//! gateway outage or an unplugged scanner is reported, not restarted.
//! Without `WATCHDOG_USEC` (not under systemd, or no `WatchdogSec=`) nothing
//! ticks: the daemon does not wake up when idle.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::Local;
use scanner_drivers::ScannerState;
use settlement_client::Gateway;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::events::{Event, EventBus};
use crate::journal::{Counts, Journal};
use crate::scanhub::ScanHub;

/// Longest a core part may take to answer a probe.
pub const CORE_DEADLINE: Duration = Duration::from_secs(2);

/// How often systemd is told that a long journal recovery still runs.
pub const RECOVERY_TICK: Duration = Duration::from_secs(5);

/// The receiving end of a [`LoopProbe`]: a loop selects on it and answers
/// each request with [`answer`].
pub type ProbeRx = mpsc::Receiver<oneshot::Sender<()>>;

/// Asks a loop whether it runs: the loop answers between its other work.
#[derive(Debug, Clone)]
pub struct LoopProbe(mpsc::Sender<oneshot::Sender<()>>);

impl LoopProbe {
    /// A probe and the receiver its loop selects on.
    pub fn channel() -> (LoopProbe, ProbeRx) {
        let (tx, rx) = mpsc::channel(4);
        (LoopProbe(tx), rx)
    }

    /// True when the loop answered within `deadline`.
    pub async fn ask(&self, deadline: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.0.try_send(tx).is_err() {
            // Full (earlier probes unanswered) or the loop is gone.
            return false;
        }
        matches!(tokio::time::timeout(deadline, rx).await, Ok(Ok(())))
    }
}

/// Answers one probe (called by the probed loop).
pub fn answer(reply: oneshot::Sender<()>) {
    let _ = reply.send(());
}

/// A part of the core that must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The journal thread (SQLite).
    Journal,
    /// The scan hub's event loop.
    ScanHub,
    /// The local API's accept loop.
    Api,
}

impl Part {
    /// How the log and `STATUS=` name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Journal => "the journal thread",
            Part::ScanHub => "the scan hub",
            Part::Api => "the API loop",
        }
    }
}

/// What a healthy core reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Core {
    /// Scanners configured.
    pub scanners: usize,
    /// Ids of configured scanners that are not connected.
    pub not_connected: Vec<String>,
    /// The gateway link: `online`, `signing_in` or `offline`.
    pub gateway: &'static str,
    /// Journal counts.
    pub journal: Counts,
}

impl fmt::Display for Core {
    /// The `STATUS=` line: "ready: 2 scanners connected, gateway online, 0 unresolved".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let connected = self.scanners - self.not_connected.len();
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        match (self.scanners, self.not_connected.is_empty()) {
            (0, _) => write!(f, "ready: no scanner configured")?,
            (n, true) => write!(f, "ready: {n} scanner{} connected", plural(n))?,
            (n, false) => write!(
                f,
                "ready: {connected} of {n} scanner{} connected (not connected: {})",
                plural(n),
                self.not_connected.join(", ")
            )?,
        }
        write!(
            f,
            ", gateway {}, {} unresolved",
            self.gateway.replace('_', " "),
            self.journal.unresolved
        )?;
        if self.journal.reversal_failed > 0 {
            write!(
                f,
                ", {} reversal_failed (a person must look)",
                self.journal.reversal_failed
            )?;
        }
        Ok(())
    }
}

/// The parts that did not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stuck(pub Vec<Part>);

impl fmt::Display for Stuck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.0.iter().map(|p| p.as_str()).collect();
        write!(
            f,
            "unhealthy: {} did not answer within {} s",
            names.join(" and "),
            CORE_DEADLINE.as_secs()
        )
    }
}

/// The daemon's core, as health checks reach it.
#[derive(Debug)]
pub struct Health {
    journal: Journal,
    hub: Arc<ScanHub>,
    hub_loop: LoopProbe,
    api_loop: LoopProbe,
    gateway: Arc<Gateway>,
}

impl Health {
    /// Checks over the journal, the hub (and its loop's probe), the API
    /// loop's probe and the gateway's link state.
    pub fn new(
        journal: Journal,
        hub: Arc<ScanHub>,
        hub_loop: LoopProbe,
        api_loop: LoopProbe,
        gateway: Arc<Gateway>,
    ) -> Self {
        Health {
            journal,
            hub,
            hub_loop,
            api_loop,
            gateway,
        }
    }

    /// Asks the three parts at once; each must answer within `deadline`.
    pub async fn check(&self, deadline: Duration) -> Result<Core, Stuck> {
        let stale = Local::now()
            - chrono::Duration::from_std(crate::engine::STALE_AFTER).unwrap_or_default();
        let (journal, writer, hub, api) = tokio::join!(
            tokio::time::timeout(deadline, self.journal.counts(stale)),
            tokio::time::timeout(deadline, self.journal.probe_writer()),
            self.hub_loop.ask(deadline),
            self.api_loop.ask(deadline),
        );
        let mut stuck = Vec::new();
        let counts = match (journal, writer) {
            (Ok(Ok(c)), Ok(Ok(()))) => Some(c),
            (Ok(Err(e)), _) | (_, Ok(Err(e))) => {
                warn!(error = %e, "The journal did not answer the health check.");
                None
            }
            _ => None,
        };
        if counts.is_none() {
            stuck.push(Part::Journal);
        }
        if !hub {
            stuck.push(Part::ScanHub);
        }
        if !api {
            stuck.push(Part::Api);
        }
        match counts {
            Some(journal) if stuck.is_empty() => {
                let list = self.hub.list();
                Ok(Core {
                    scanners: list.len(),
                    not_connected: list
                        .into_iter()
                        .filter(|s| s.state != ScannerState::Connected)
                        .map(|s| s.id)
                        .collect(),
                    gateway: self.gateway.state().borrow().as_str(),
                    journal,
                })
            }
            _ => Err(Stuck(stuck)),
        }
    }
}

/// Half the systemd watchdog interval, when one is set for this process.
pub fn watchdog_period() -> Option<Duration> {
    let mut usec = 0u64;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        Some(Duration::from_micros(usec / 2))
    } else {
        None
    }
}

/// True when systemd listens for notifications (`NOTIFY_SOCKET`).
fn under_systemd() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// Tells systemd `states` (`READY=1`, `WATCHDOG=1`, `STATUS=…`) without
/// ever waiting: `sd_notify::notify` blocks while the manager's socket is
/// full, and a manager slow to read (or a test harness that never reads)
/// then stalled the thread that reports — once it was the main thread at
/// `STOPPING=1`, so SIGTERM never finished. A message the socket cannot
/// take now is dropped (each is advisory or repeated: the next
/// `WATCHDOG=1` comes within half the interval).
pub fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Some(path) = std::env::var_os("NOTIFY_SOCKET") {
        notify_to(std::path::Path::new(&path), states);
    }
}

/// [`notify`] to the socket at `path`.
fn notify_to(path: &std::path::Path, states: &[sd_notify::NotifyState<'_>]) {
    let msg: String = states.iter().map(|s| format!("{s}\n")).collect();
    let sent = std::os::unix::net::UnixDatagram::unbound().and_then(|sock| {
        sock.set_nonblocking(true)?;
        sock.connect(path)?;
        sock.send(msg.as_bytes())
    });
    if let Err(e) = sent {
        tracing::debug!(error = %e, "systemd's notify socket did not take a message; dropped.");
    }
}

/// How long [`supervise`] lets a burst of events settle before it checks
/// and updates `STATUS=` once for all of them (a resolver finishing a
/// thousand records is one update, not a thousand).
const STATUS_SETTLE: Duration = Duration::from_millis(200);

/// The last `STATUS=` sent, so [`supervise`] puts the usual line back
/// after another one (e.g. "reloaded").
static LAST_STATUS: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// Sends `STATUS=` now (e.g. "reloading the configuration").
pub fn status(text: &str) {
    notify(&[sd_notify::NotifyState::Status(text)]);
    *LAST_STATUS.lock().unwrap_or_else(|e| e.into_inner()) = text.to_string();
}

fn last_status_is(text: &str) -> bool {
    *LAST_STATUS.lock().unwrap_or_else(|e| e.into_inner()) == text
}

/// Runs until `cancel`: every half watchdog interval, checks the core and
/// sends `WATCHDOG=1` only when it answered; keeps `STATUS=` current, also
/// when a scanner, the gateway or a transaction changes. Does nothing when
/// systemd is not listening.
pub async fn supervise(health: Arc<Health>, events: EventBus, cancel: CancellationToken) {
    if !under_systemd() {
        return;
    }
    let period = watchdog_period();
    let deadline = period.map_or(CORE_DEADLINE, |p| CORE_DEADLINE.min(p / 2));
    let mut tick = period.map(|p| {
        let mut i = tokio::time::interval(p);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    let mut rx = events.subscribe();
    let mut was_stuck = false;
    loop {
        let watchdog = tokio::select! {
            _ = cancel.cancelled() => return,
            _ = async { match tick.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending().await } } => true,
            ev = rx.recv() => match ev {
                Ok(e) if matches!(*e, Event::Scan(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                _ => false,
            },
        };
        if !watchdog {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(STATUS_SETTLE) => {}
            }
            loop {
                match rx.try_recv() {
                    Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::TryRecvError::Empty) => break,
                    Err(tokio::sync::broadcast::error::TryRecvError::Closed) => return,
                }
            }
        }
        let (text, healthy) = match health.check(deadline).await {
            Ok(core) => {
                if was_stuck {
                    info!("The daemon's core answers again.");
                    was_stuck = false;
                }
                (core.to_string(), true)
            }
            Err(stuck) => {
                warn!(parts = ?stuck.0.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                    "Health check failed: not telling the watchdog; systemd restarts the daemon if this lasts.");
                was_stuck = true;
                (stuck.to_string(), false)
            }
        };
        if watchdog && healthy {
            notify(&[sd_notify::NotifyState::Watchdog]);
        }
        if !last_status_is(&text) {
            status(&text);
        }
    }
}

/// While a journal recovery runs: every [`RECOVERY_TICK`], if the journal's
/// writing thread answers, tells systemd to wait longer (`EXTEND_TIMEOUT_USEC`),
/// feeds the watchdog and says what is happening. Stop it by dropping the
/// returned guard.
pub fn recovery_keepalive(
    journal: Journal,
    unresolved: u64,
) -> Option<tokio::task::JoinHandle<()>> {
    if !under_systemd() {
        return None;
    }
    let started = std::time::Instant::now();
    Some(tokio::spawn(async move {
        let extend = (RECOVERY_TICK * 3).as_micros() as u32;
        loop {
            // The writing thread (the one recovery keeps busy): a wedged
            // one must not be kept alive by extensions.
            if let Ok(Ok(())) = tokio::time::timeout(CORE_DEADLINE, journal.probe_writer()).await {
                let text = format!(
                    "recovering the journal: {unresolved} unfinished transaction{} ({} s)",
                    if unresolved == 1 { "" } else { "s" },
                    started.elapsed().as_secs()
                );
                notify(&[
                    sd_notify::NotifyState::ExtendTimeoutUsec(extend),
                    sd_notify::NotifyState::Watchdog,
                    sd_notify::NotifyState::Status(&text),
                ]);
            }
            tokio::time::sleep(RECOVERY_TICK).await;
        }
    }))
}

/// Test hook (feature `crash-points`, never in a release build):
/// `YBPOS_TEST_FREEZE_JOURNAL_AFTER_MS=n` freezes the journal thread `n` ms
/// after start, so a test can prove the watchdog restarts the daemon.
#[cfg(feature = "crash-points")]
pub fn test_freeze_hook(journal: &Journal) {
    let Some(ms) = std::env::var("YBPOS_TEST_FREEZE_JOURNAL_AFTER_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    let journal = journal.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        warn!("Test hook: freezing the journal thread.");
        journal.freeze_for_test();
    });
}

/// Without the feature `crash-points` the hook does nothing.
#[cfg(not(feature = "crash-points"))]
pub fn test_freeze_hook(_journal: &crate::journal::Journal) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn core(scanners: usize, not: &[&str], unresolved: u64, rf: u64) -> Core {
        Core {
            scanners,
            not_connected: not.iter().map(|s| s.to_string()).collect(),
            gateway: "online",
            journal: Counts {
                unresolved,
                reversal_failed: rf,
                stale: 0,
            },
        }
    }

    #[test]
    fn status_lines_read_as_sentences() {
        assert_eq!(
            core(2, &[], 0, 0).to_string(),
            "ready: 2 scanners connected, gateway online, 0 unresolved"
        );
        assert_eq!(
            core(2, &["wedge"], 3, 1).to_string(),
            "ready: 1 of 2 scanners connected (not connected: wedge), gateway online, \
             3 unresolved, 1 reversal_failed (a person must look)"
        );
        assert_eq!(
            core(0, &[], 0, 0).to_string(),
            "ready: no scanner configured, gateway online, 0 unresolved"
        );
        assert_eq!(
            Stuck(vec![Part::Journal, Part::Api]).to_string(),
            "unhealthy: the journal thread and the API loop did not answer within 2 s"
        );
    }

    #[test]
    fn a_notify_socket_nobody_reads_never_blocks_the_sender() {
        // Failed before: sd_notify::notify blocked once the socket's queue
        // was full (after a few hundred STATUS lines), for ever.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let _unread = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        let (done, finished) = std::sync::mpsc::channel();
        let p = path.clone();
        std::thread::spawn(move || {
            for i in 0..5000 {
                let text = format!("ready: {i} unresolved");
                notify_to(&p, &[sd_notify::NotifyState::Status(&text)]);
            }
            notify_to(&p, &[sd_notify::NotifyState::Stopping]);
            let _ = done.send(());
        });
        assert!(
            finished.recv_timeout(Duration::from_secs(60)).is_ok(),
            "the sender hung on a full notify socket"
        );
    }

    #[tokio::test]
    async fn a_loop_probe_fails_when_the_loop_does_not_answer() {
        let (probe, mut rx) = LoopProbe::channel();
        let answering = tokio::spawn(async move {
            if let Some(r) = rx.recv().await {
                answer(r);
            }
            rx // then keeps the receiver without answering
        });
        assert!(probe.ask(Duration::from_secs(1)).await);
        let _rx = answering.await.unwrap();
        assert!(!probe.ask(Duration::from_millis(50)).await);
    }
}
