//! Wiring: config → gateway, scanners, scan hub, identity, API → ready.
//!
//! [`Daemon::start`] brings everything up in order and returns once the API
//! is bound (what `READY=1` means); [`Daemon::shutdown`] stops it in phases:
//! stop accepting (Unix socket and HTTP), release scanners, sign out,
//! remove the socket. [`main`] adds systemd's side: `READY=1`, the health
//! watchdog and `STATUS=` ([`crate::health`]), reload on SIGHUP
//! ([`crate::reload`]), `STOPPING=1`.

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
use crate::health::{Health, LoopProbe};
use crate::identity::Identity;
use crate::journal::Journal;
use crate::reload::Reloader;
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
    /// The core's health checks (watchdog, `STATUS=`).
    pub health: Arc<Health>,
    /// Applies a changed config file (SIGHUP).
    pub reloader: Arc<Reloader>,
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
        gateway.observe_calls(Arc::new(|infno, _class, took| {
            crate::metrics::global()
                .gateway_latency
                .observe(&[infno], took);
        }));

        // Scanners → hub; the hub's loop also answers health probes.
        let hub = ScanHub::new(&cfg, events.clone());
        let (tx, mut rx) = mpsc::channel(256);
        let drivers = Drivers::start(&cfg.scanners, tx, cancel.child_token());
        let hub2 = Arc::clone(&hub);
        let (hub_probe, mut hub_probes) = LoopProbe::channel();
        tracker.spawn(async move {
            loop {
                tokio::select! {
                    ev = rx.recv() => match ev {
                        Some(ev) => hub2.on_event(ev),
                        None => break,
                    },
                    Some(reply) = hub_probes.recv() => {
                        // Takes the hub's lock: a wedged hub does not answer.
                        let _ = hub2.list();
                        crate::health::answer(reply);
                    }
                }
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
            journal.clone(),
            Arc::clone(&gateway),
            sessions,
            events.clone(),
        );
        // A large recovery tells systemd to wait (EXTEND_TIMEOUT_USEC).
        let open = journal
            .counts(Local::now())
            .await
            .map(|c| c.unresolved)
            .unwrap_or(0);
        let keepalive = (open > 0)
            .then(|| crate::health::recovery_keepalive(journal.clone(), open))
            .flatten();
        let recovered = engine.recover().await;
        if let Some(k) = keepalive {
            k.abort();
        }
        let unresolved = recovered.context("recovering the journal")?;
        crate::health::test_freeze_hook(&journal);
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
            gateway: Arc::clone(&gateway),
            hub: Arc::clone(&hub),
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
        let (api_tx, api) = crate::api::live::channel(cfg.api.clone());
        let (api_probe, api_probes) = LoopProbe::channel();
        tracker.spawn(unix::serve(
            listener,
            api.clone(),
            Arc::clone(&service),
            cancel.child_token(),
            tracker.clone(),
            api_probes,
        ));
        info!(socket = %cfg.api.socket.display(), "API listening.");
        let health = Arc::new(Health::new(
            journal,
            Arc::clone(&hub),
            hub_probe,
            api_probe,
            Arc::clone(&gateway),
        ));
        if let Some(http) = http {
            info!(
                addr = %http.local_addr(),
                token_file = %http.token_file().display(),
                "HTTP API listening."
            );
            tracker.spawn(http.serve(
                api,
                Arc::clone(&health),
                Arc::clone(&service),
                cancel.child_token(),
                tracker.clone(),
            ));
        }
        let reloader = Arc::new(Reloader::new(
            &cfg.source,
            (*cfg).clone(),
            api_tx,
            drivers.clone(),
            hub,
            gateway,
        ));
        Ok(Daemon {
            socket: cfg.api.socket.clone(),
            http_addr,
            service,
            health,
            reloader,
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
/// SIGTERM/SIGINT (reloading on SIGHUP), stop. Returns the exit code (78
/// for a bad config).
pub async fn main(config: &std::path::Path) -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    let cfg = match crate::reload::check(config) {
        Ok(c) => c,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            tracing::error!(problems = problems.len(), file = %config.display(), "Invalid configuration.");
            return ybpos_config::EXIT_CONFIG;
        }
    };
    if let Err(e) = crate::logging::set_filter(cfg.log.filter.as_deref()) {
        warn!(error = %e, "Cannot apply log.filter.");
    }
    // Signals are taken before anything starts: SIGHUP would otherwise end
    // the process while it starts.
    let (mut term, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(h)) => (t, h),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("ybposd: cannot watch signals: {e}");
            return 1;
        }
    };
    info!(version = env!("CARGO_PKG_VERSION"), config = %config.display(), "Starting ybposd.");
    crate::health::status("starting: opening scanners, the journal and the API");
    let daemon = match Daemon::start(cfg, Extras::default()).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "Cannot start.");
            eprintln!("ybposd: {e:#}");
            return 1;
        }
    };
    crate::health::notify(&[sd_notify::NotifyState::Ready]);
    info!("Ready.");
    let supervisor = CancellationToken::new();
    tokio::spawn(crate::health::supervise(
        Arc::clone(&daemon.health),
        daemon.service.events.clone(),
        supervisor.clone(),
    ));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = hup.recv() => {
                crate::health::notify(&[sd_notify::NotifyState::Reloading]);
                crate::health::status("reloading the configuration");
                let text = match daemon.reloader.reload().await {
                    Ok(a) if a.need_restart.is_empty() => "reloaded".to_string(),
                    Ok(a) => format!("reloaded; restart to apply {}", a.need_restart.join(", ")),
                    Err(r) => format!("reload refused: {r}"),
                };
                crate::health::notify(&[sd_notify::NotifyState::Ready]);
                crate::health::status(&text);
                // The supervisor puts the usual line back at its next check.
            }
        }
    }
    supervisor.cancel();
    crate::health::notify(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status(
            "stopping: closing the API, releasing scanners, signing out",
        ),
    ]);
    daemon.shutdown().await;
    0
}
