//! What the service is asked ([`Call`]) and what it answers ([`Answer`],
//! [`ServiceError`]): domain values the transports parse into and render
//! from.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Local, NaiveDate};
use settlement_client::LinkState;
use ybpos_config::Config;

use super::demo::{DemoError, DemoScanned};
use crate::engine::machine::State;
use crate::engine::{Submit, TxnError, TxnKey, Usage};
use crate::identity::{Given, Identified, LookupError};
use crate::journal::{Counts, JournalError, Record};
use crate::scanhub::{ScannerStatus, WaitError};

/// `scan.wait` without `timeout_ms` at a staffed counter (local-api.md);
/// a kiosk has its own (`[kiosk] scan_wait_ms`).
pub const SCAN_WAIT_DEFAULT: Duration = Duration::from_secs(30);

/// A parsed API call.
#[derive(Debug, Clone)]
pub enum Call {
    /// `system.info`.
    SystemInfo,
    /// `scanner.list`.
    ScannerList,
    /// `events.subscribe`.
    Subscribe {
        /// Topics wanted.
        topics: Vec<String>,
    },
    /// `events.unsubscribe`.
    Unsubscribe {
        /// The id from `events.subscribe`.
        subscription: String,
    },
    /// `scan.wait`.
    ScanWait {
        /// 用码业务类型.
        business_type: String,
        /// Scanner id (default: the first).
        scanner: Option<String>,
        /// How long to wait (`None`: the terminal's default).
        timeout: Option<Duration>,
    },
    /// `identity.lookup`.
    IdentityLookup {
        /// 用码业务类型.
        business_type: String,
        /// The credential.
        credential: Given,
    },
    /// `txn.submit`.
    TxnSubmit(Submit),
    /// `txn.get`.
    TxnGet(TxnKey),
    /// `txn.list`.
    TxnList {
        /// Created at or after.
        since: Option<DateTime<Local>>,
        /// Only this state.
        state: Option<State>,
        /// Only what a person must look at.
        needs_person: bool,
        /// At most this many.
        limit: usize,
    },
    /// `txn.resolve`: a person closes a record the machine could not finish.
    TxnResolve {
        /// The record.
        txn_id: String,
        /// `succeeded`, `failed` or `reversed`.
        outcome: State,
        /// Who.
        operator: String,
        /// Why (what they checked).
        note: String,
    },
    /// `report.usage`.
    ReportUsage {
        /// First day.
        from: NaiveDate,
        /// Last day, inclusive.
        to: NaiveDate,
    },
    /// `rpc.discover`: the API's own description (OpenRPC).
    Discover,
    /// `demo.scan` (demo mode only): put a test code into the virtual scanner.
    DemoScan {
        /// Test person (index, psn_no or name); default the first.
        person: Option<String>,
        /// `medical` (default), `wechat`, `alipay`, `unionpay`, `garbage`.
        kind: String,
        /// Exact text to scan instead.
        text: Option<String>,
    },
}

/// What `system.info` reports.
#[derive(Debug)]
pub struct SystemInfo {
    /// The running config (terminal identity, gateway profile and auth).
    pub cfg: Arc<Config>,
    /// The gateway link.
    pub link: LinkState,
    /// Every configured scanner.
    pub scanners: Vec<ScannerStatus>,
    /// The journal file.
    pub journal_path: PathBuf,
    /// The journal's counts, or why they cannot be read.
    pub journal: Result<Counts, JournalError>,
}

/// A call's result.
#[derive(Debug)]
pub enum Answer {
    /// `system.info`.
    SystemInfo(Box<SystemInfo>),
    /// `scanner.list`.
    Scanners(Vec<ScannerStatus>),
    /// `events.subscribe`: the subscription's id.
    Subscribed(String),
    /// `events.unsubscribe`.
    Unsubscribed,
    /// `scan.wait`, `identity.lookup`.
    Identity(Box<Identified>),
    /// `txn.submit`, `txn.get`.
    Record(Box<Record>),
    /// `txn.list`.
    Records(Vec<Record>),
    /// `report.usage`.
    Usage(Usage),
    /// `demo.scan`.
    DemoScanned(DemoScanned),
    /// `rpc.discover`: the edge answers with the OpenRPC document.
    Discovered,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A wait for a scan.
    #[error(transparent)]
    Wait(#[from] WaitError),
    /// An identity lookup.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// A transaction call.
    #[error(transparent)]
    Txn(#[from] TxnError),
    /// `events.unsubscribe` of an id this caller does not hold.
    #[error("no such subscription on this connection")]
    NoSuchSubscription,
    /// Events need a connection that stays open.
    #[error("events need a long-lived connection")]
    NeedsLongLivedConnection,
    /// `demo.scan` outside the demo.
    #[error("demo.scan is served only by ybposd --demo")]
    NotDemo,
    /// The demo's virtual scanner.
    #[error(transparent)]
    Demo(#[from] DemoError),
    /// A self-service kiosk does not look people up by a typed ID number.
    #[error("a self-service kiosk does not look people up by a typed ID number")]
    KioskTypedIdNumber,
    /// The task running the call failed (a bug).
    #[error("{0}")]
    TaskFailed(String),
}
