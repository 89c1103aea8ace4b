//! Wiring: config → gateway, scanners, scan hub, identity, API → ready.
//!
//! [`Daemon::start`] brings everything up in order and returns once the API
//! is bound (what `READY=1` means); [`Daemon::shutdown`] stops it in phases:
//! stop accepting (Unix socket and HTTP), release scanners, sign out,
//! remove the socket.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Local;
use scanner_drivers::Drivers;
use settlement_client::gateway::{GatewaySettings, signer_from_config};
use settlement_client::{Gateway, LinkState, Outcome};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, warn};
use ybpos_config::Config;

use crate::api::http::HttpListener;
use crate::api::unix;
use crate::engine::{Engine, EngineSettings};
use crate::events::{Event, EventBus};
use crate::identity::Identity;
use crate::journal::Journal;
use crate::scanhub::ScanHub;
use crate::service::{DemoScanner, Service};
use crate::sessions::Sessions;

/// How long shutdown waits for each phase before moving on.
pub const PHASE_DEADLINE: Duration = Duration::from_secs(5);

/// A running daemon.
#[derive(Debug)]
pub struct Daemon {
    /// The Unix socket clients connect to.
    pub socket: PathBuf,
    /// The HTTP/WebSocket API's bound address (`None` when disabled).
    pub http_addr: Option<std::net::SocketAddr>,
    /// The service (for in-process callers such as tests and the demo).
    pub service: Arc<Service>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    drivers: Drivers,
}

/// Extra parts injected by the demo.
#[derive(Debug, Default)]
pub struct Extras {
    /// `demo.scan` support.
    pub demo: Option<Arc<dyn DemoScanner>>,
}

impl Daemon {
    /// Starts every part; returns when the API is bound.
    pub async fn start(cfg: Config, extras: Extras) -> anyhow::Result<Daemon> {
        let cfg = Arc::new(cfg);
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let events = EventBus::default();

        // The journal opens (files, migrations: synced writes) on a
        // blocking thread while the gateway client is built (TLS roots read
        // and parsed): the disk's wait and the CPU's work overlap.
        // A thread of its own that ends once the journal is open (a
        // blocking-pool thread would linger and wake once more, idle).
        let path = cfg.journal.path.clone();
        let (opened, opening) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("journal-open".into())
            .spawn(move || {
                let _ = opened.send(Journal::open(&path));
            })
            .context("starting the journal")?;
        let signer = signer_from_config(&cfg).context("reading the gateway secret")?;
        let settings = GatewaySettings::from_config(&cfg).context("reading gateway.ca_file")?;
        let gateway = Arc::new(Gateway::new(settings, signer)?);

        // Scanners → hub.
        let hub = ScanHub::new(&cfg, events.clone());
        let (tx, mut rx) = mpsc::channel(256);
        let drivers = Drivers::start(&cfg.scanners, tx, cancel.child_token());
        let hub2 = Arc::clone(&hub);
        tracker.spawn(async move {
            while let Some(ev) = rx.recv().await {
                hub2.on_event(ev);
            }
        });

        let sessions = Arc::new(Sessions::default());
        let identity = Identity::new(Arc::clone(&gateway), Arc::clone(&sessions), cfg.session.ttl);

        // The journal, and recovery of every unfinished record, before ready.
        let journal = opening
            .await
            .context("opening the journal: its thread died")?
            .with_context(|| format!("opening the journal {}", cfg.journal.path.display()))?;
        let engine = Engine::new(
            EngineSettings::from_config(&cfg),
            journal,
            Arc::clone(&gateway),
            sessions,
            events.clone(),
        );
        let unresolved = engine.recover().await.context("recovering the journal")?;
        journal_gauges(&cfg.journal.path);
        if unresolved > 0 {
            warn!(unresolved, "Unfinished transactions found; resolving them.");
        }

        // Gateway: sign in now (msgids are safe to use once recovery has
        // claimed their start) and keep the `gateway` topic informed.
        tracker.spawn(
            keep_signed_in(Arc::clone(&gateway), events.clone(), cancel.child_token())
                .instrument(tracing::info_span!("gateway")),
        );
        let service = Arc::new(Service {
            cfg: Arc::clone(&cfg),
            gateway,
            hub,
            identity,
            events,
            engine,
            demo: extras.demo,
            drivers: drivers.clone(),
        });

        // HTTP first: it can fail (token file, port in use) with nothing to undo.
        let http = HttpListener::bind(&cfg.api).await?;
        let http_addr = http.as_ref().map(HttpListener::local_addr);
        let listener = unix::bind(&cfg.api)?;
        tracker.spawn(unix::serve(
            listener,
            cfg.api.clone(),
            Arc::clone(&service),
            cancel.child_token(),
            tracker.clone(),
        ));
        info!(socket = %cfg.api.socket.display(), "API listening.");
        if let Some(http) = http {
            info!(
                addr = %http.local_addr(),
                token_file = %http.token_file().display(),
                "HTTP API listening."
            );
            tracker.spawn(http.serve(
                cfg.api.clone(),
                Arc::clone(&service),
                cancel.child_token(),
                tracker.clone(),
            ));
        }
        Ok(Daemon {
            socket: cfg.api.socket.clone(),
            http_addr,
            service,
            cancel,
            tracker,
            drivers,
        })
    }

    /// Stops in phases, each under [`PHASE_DEADLINE`].
    pub async fn shutdown(self) {
        info!("Shutting down.");
        self.cancel.cancel();
        if tokio::time::timeout(PHASE_DEADLINE, self.drivers.shutdown())
            .await
            .is_err()
        {
            warn!("Scanner back ends did not stop in time.");
        }
        match tokio::time::timeout(PHASE_DEADLINE, self.service.gateway.sign_out()).await {
            Ok(Outcome::Ok(())) => info!("Signed out at the gateway."),
            Ok(o) => warn!(outcome = o.class(), "Sign-out failed."),
            Err(_) => warn!("Sign-out did not finish in time."),
        }
        self.tracker.close();
        if tokio::time::timeout(PHASE_DEADLINE, self.tracker.wait())
            .await
            .is_err()
        {
            warn!("Some API connections did not close in time.");
        }
        unix::unlink(&self.socket);
    }
}

/// The journal gauges, read at scrape time from a read-only connection.
fn journal_gauges(path: &std::path::Path) {
    let reader = Arc::new(crate::journal::CountReader::new(path));
    let stale = || {
        Local::now() - chrono::Duration::from_std(crate::engine::STALE_AFTER).unwrap_or_default()
    };
    let m = crate::metrics::global();
    let r = Arc::clone(&reader);
    m.journal_unresolved
        .set_value_source(move || r.counts(stale()).map(|c| c.unresolved as i64));
    let r = Arc::clone(&reader);
    m.journal_reversal_failed
        .set_value_source(move || r.counts(stale()).map(|c| c.reversal_failed as i64));
    let r = reader;
    m.journal_stale
        .set_value_source(move || r.counts(stale()).map(|c| c.stale as i64));
}

/// Signs in at start, retries with back-off while offline, and publishes
/// the link state on the `gateway` topic.
async fn keep_signed_in(gateway: Arc<Gateway>, events: EventBus, cancel: CancellationToken) {
    let mut state = gateway.state();
    let mut backoff = Duration::ZERO;
    let mut published: Option<&'static str> = None;
    loop {
        let s = state.borrow_and_update().clone();
        if published != Some(s.as_str()) {
            published = Some(s.as_str());
            events.publish(Event::Gateway(s.clone()));
        }
        if matches!(s, LinkState::Offline { .. }) {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = match gateway.sign_in().await {
                Outcome::Ok(_) => Duration::ZERO,
                _ => (backoff * 2).clamp(Duration::from_secs(1), Duration::from_secs(60)),
            };
            continue;
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = state.changed() => if r.is_err() { return },
        }
    }
}

/// The daemon's main: load config, start, report ready, run until
/// SIGTERM/SIGINT, stop. Returns the exit code (78 for a bad config).
pub async fn main(config: &std::path::Path) -> i32 {
    let cfg = match ybpos_config::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            tracing::error!(problems = e.0.len(), file = %config.display(), "Invalid configuration.");
            return ybpos_config::EXIT_CONFIG;
        }
    };
    info!(version = env!("CARGO_PKG_VERSION"), config = %config.display(), "Starting ybposd.");
    let daemon = match Daemon::start(cfg, Extras::default()).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "Cannot start.");
            eprintln!("ybposd: {e:#}");
            return 1;
        }
    };
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let mut watchdog =
        tokio::time::interval(watchdog_period().unwrap_or(Duration::from_secs(3600)));
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ybposd: cannot watch SIGTERM: {e}");
            return 1;
        }
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = watchdog.tick() => {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            }
        }
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    daemon.shutdown().await;
    0
}

/// Half the systemd watchdog interval, when one is set.
fn watchdog_period() -> Option<Duration> {
    let mut usec = 0u64;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        Some(Duration::from_micros(usec / 2))
    } else {
        None
    }
}
