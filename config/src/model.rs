//! The validated configuration types: what the rest of ybpos reads.
//!
//! Every value here has passed validation; paths are absolute (resolved
//! against the config file's folder) and durations are typed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The whole configuration of one terminal.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this configuration was read from (for messages).
    pub source: PathBuf,
    /// Who this terminal is, as the gateway knows it.
    pub terminal: Terminal,
    /// How to reach the provincial settlement gateway.
    pub gateway: Gateway,
    /// The barcode scanners attached to this terminal.
    pub scanners: Vec<Scanner>,
    /// The local API served to HIS/POS software.
    pub api: Api,
    /// The durable transaction journal.
    pub journal: Journal,
    /// How scanned codes are recognised.
    pub codes: Codes,
    /// Identity sessions created by `scan.wait` / `identity.lookup`.
    pub session: Session,
    /// The daemon's logs.
    pub log: Log,
    /// Kiosk mode: `Some` when `terminal.opter_type = "2"` (an unattended
    /// self-service machine, 自助服务设备), with its stricter defaults.
    pub kiosk: Option<Kiosk>,
}

/// What changes on an unattended self-service kiosk (`[kiosk]`, read only
/// when `terminal.opter_type = "2"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kiosk {
    /// `scan.wait` without `timeout_ms` waits this long (`scan_wait_ms`,
    /// default 20 s: the patient stands at the screen).
    pub scan_wait_default: Duration,
    /// `identity.lookup` by an ID number that was typed, not read from the
    /// card's chip (`typed_id_numbers`, default false: nobody checks who
    /// types someone else's number).
    pub typed_id_numbers: bool,
}

/// The institution and operator, sent in every request envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminal {
    /// Institution code, `H`/`P` + 11 digits.
    pub fixmedins_code: String,
    /// Institution name.
    pub fixmedins_name: String,
    /// Admin division where care happens (6 digits).
    pub mdtrtarea_admvs: String,
    /// Operator (cashier or terminal) id.
    pub opter: String,
    /// Operator name.
    pub opter_name: String,
    /// `1` staff, `2` self-service kiosk, `3` mobile.
    pub opter_type: String,
    /// This terminal's number among the institution's terminals (0–99), so
    /// msgids of several cashier PCs never collide; `None` for a lone terminal.
    pub msgid_node: Option<u8>,
    /// How many terminals share `fixmedins_code` (default 1); above 1 each
    /// needs its own `msgid_node`.
    pub terminals: u8,
}

/// How transactions are addressed at the gateway (gateway.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// One path per transaction under the base URL.
    FsiPaths,
    /// Every transaction posted to the base URL, infno in the body.
    SingleEndpoint,
    /// `{base}/{infno}`.
    InfnoInUrl,
}

impl Profile {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::FsiPaths => "fsi-paths",
            Profile::SingleEndpoint => "single-endpoint",
            Profile::InfnoInUrl => "infno-in-url",
        }
    }
}

/// How requests are authenticated at the gateway (gateway.md §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// Intranet: `sign_no` is the only credential.
    None,
    /// Guangdong/Hebei `x-tif-*` headers, SHA-256.
    Tif {
        /// Issued application id (`x-tif-paasid`).
        paasid: String,
        /// File holding the secret.
        secret_file: PathBuf,
    },
    /// Zhejiang `x-ca-*` headers, HMAC-SM3.
    XCa {
        /// `x-ca-key`; the institution code unless configured.
        key: String,
        /// File holding the secret.
        secret_file: PathBuf,
    },
    /// A static `apikey` header to a front-end processor.
    ApiKey {
        /// File holding the key.
        secret_file: PathBuf,
    },
}

impl Auth {
    /// The config spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Tif { .. } => "tif",
            Auth::XCa { .. } => "x-ca",
            Auth::ApiKey { .. } => "apikey",
        }
    }
}

/// The settlement gateway.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// Base URL (for `fsi-paths`, the part before the per-infno path).
    pub url: String,
    /// Transport profile.
    pub profile: Profile,
    /// Authentication mode.
    pub auth: Auth,
    /// Receiving system code (`recer_sys_code`).
    pub recer_sys_code: String,
    /// Interface version (`infver`).
    pub infver: String,
    /// Time allowed to connect; failing here means "not sent".
    pub connect_timeout: Duration,
    /// Time allowed for the whole request; past it the outcome is unknown.
    pub request_timeout: Duration,
    /// Send decode (1162) without the common envelope.
    pub decode_bare: bool,
    /// Per-infno path overrides (`[gateway.paths]`).
    pub paths: BTreeMap<String, String>,
    /// Extra CA bundle (PEM) to trust, for provincial private CAs.
    pub ca_file: Option<PathBuf>,
    /// Largest response body accepted, in bytes.
    pub max_response_bytes: usize,
    /// Device number sent as `dev_no` (optional).
    pub dev_no: Option<String>,
    /// MAC address reported at sign-in (9001 `mac`).
    pub mac: String,
    /// IP address reported at sign-in (9001 `ip`).
    pub ip: String,
}

/// How a scanner is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScannerTransport {
    /// RS-232 or USB virtual COM port.
    Serial,
    /// USB HID point-of-sale (usage page 0x8C).
    HidPos,
    /// USB HID keyboard wedge, read exclusively.
    HidKeyboard,
}

impl ScannerTransport {
    /// The config and API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ScannerTransport::Serial => "serial",
            ScannerTransport::HidPos => "hid-pos",
            ScannerTransport::HidKeyboard => "hid-keyboard",
        }
    }
}

/// How a serial byte stream is cut into scans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// Each scan ends with this byte sequence (CR, LF, CRLF, ETX, Tab …).
    Suffix(Vec<u8>),
    /// Each scan is wrapped in STX … ETX.
    StxEtx,
    /// A scan ends when the line is idle for the configured gap.
    Idle,
}

/// Parity of a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    /// No parity bit.
    None,
    /// Odd parity.
    Odd,
    /// Even parity.
    Even,
}

/// Serial line settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialLine {
    /// Baud rate (virtual on CDC-ACM).
    pub baud: u32,
    /// Data bits, 5–8.
    pub data_bits: u8,
    /// Parity.
    pub parity: Parity,
    /// Stop bits, 1 or 2.
    pub stop_bits: u8,
}

/// A USB device match: vid:pid plus optional serial number or port path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbMatch {
    /// Vendor id.
    pub vid: u16,
    /// Product id; `None` matches any product of the vendor.
    pub pid: Option<u16>,
}

/// How Alt+numpad sequences from a keyboard wedge are turned into characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AltCodeMode {
    /// `unicode`: the decimal number is a Unicode code point.
    Unicode,
    /// `gbk`: the decimal number is a GBK (CP936) code, with or without a
    /// leading zero (Chinese Windows, where ANSI and OEM are both 936).
    Gbk,
    /// `windows-1252`: as U.S. Windows reads it, Alt+0nnn in windows-1252
    /// (ANSI) and Alt+nnn in CP437 (OEM), modulo 256.
    Windows1252,
}

/// One configured scanner (`[[scanner]]`).
#[derive(Debug, Clone)]
pub struct Scanner {
    /// Stable id named in every scan and in the API.
    pub id: String,
    /// Attachment.
    pub transport: ScannerTransport,
    /// Device path (serial: `/dev/ttyACM0`, a by-id path; hid: `/dev/hidrawN`).
    pub path: Option<PathBuf>,
    /// USB vid:pid match, used when there is no path or the path moves.
    pub usb: Option<UsbMatch>,
    /// USB serial number to bind to one device among identical ones.
    pub serial_number: Option<String>,
    /// USB port path (e.g. `1-2.3`: bus 1, root port 2, hub port 3; the
    /// name of the device under `/sys/bus/usb/devices`) to bind to a socket
    /// on the PC.
    pub port_path: Option<String>,
    /// Serial line settings (serial transport).
    pub line: SerialLine,
    /// How a scan ends.
    pub framing: Framing,
    /// Idle gap that ends a frame (idle framing) or flushes a partial one.
    pub idle_gap: Duration,
    /// Longest scan accepted; longer frames are dropped whole.
    pub max_frame: usize,
    /// HID-POS: how long a scan whose last report was full with "Decode
    /// Data Continued" set waits for more before it is delivered (clone
    /// firmware sets the bit on a full final report and sends nothing more;
    /// `continued_timeout_ms`).
    pub continued_timeout: Duration,
    /// Alt+numpad decoding for keyboard wedges.
    pub alt_codes: AltCodeMode,
    /// Trigger the scanner when a `scan.wait` arms it (where supported:
    /// HID-POS output report, or `trigger_command` on a serial scanner).
    pub trigger_on_wait: bool,
    /// Sound the good-read beep when a `scan.wait` arms it (HID-POS, where
    /// the descriptor offers the bit).
    pub beep_on_wait: bool,
    /// Bytes sent to a serial scanner to trigger a read (Honeywell
    /// `SYN T CR` = `"\u0016T\r"`); used with `trigger_on_wait`.
    pub trigger_command: Option<Vec<u8>>,
}

impl Scanner {
    /// True when the entry names a device (path, USB ids, serial number or
    /// port); false when it takes any device of its transport.
    pub fn is_bound(&self) -> bool {
        self.path.is_some()
            || self.usb.is_some()
            || self.serial_number.is_some()
            || self.port_path.is_some()
    }
}

/// The local API (local-api.md).
#[derive(Debug, Clone)]
pub struct Api {
    /// Unix socket path.
    pub socket: PathBuf,
    /// Group owning the socket (`None` keeps the daemon's group).
    pub socket_group: Option<String>,
    /// Loopback HTTP/WebSocket listener, `None` when disabled.
    pub http_listen: Option<SocketAddr>,
    /// File holding the HTTP API token.
    pub token_file: PathBuf,
    /// Origins allowed to call the HTTP/WS API from a browser.
    pub allowed_origins: Vec<String>,
    /// Peer uids allowed on the Unix socket (empty: permissions decide).
    pub allowed_uids: Vec<u32>,
    /// Largest request line or body.
    pub max_request_bytes: usize,
    /// Connections per transport.
    pub max_connections: usize,
    /// Idle connections close after this.
    pub idle_timeout: Duration,
}

/// The journal.
#[derive(Debug, Clone)]
pub struct Journal {
    /// SQLite file.
    pub path: PathBuf,
    /// How long after an unknown request the platform's "nothing to
    /// reverse" is believed (a slow original can arrive after its reversal);
    /// `None`: twice `gateway.request_timeout_ms`.
    pub reversal_grace: Option<Duration>,
    /// Answers whose meaning is not known (a refusal text not in the
    /// table, a query answer without its list) tried before a record is
    /// handed to a person.
    pub max_unclear_answers: u32,
}

/// Code recognition (gateway.md §7).
#[derive(Debug, Clone)]
pub struct Codes {
    /// The same text twice within this window counts as one scan.
    pub dedupe_window: Duration,
    /// Strings matching this are sent to decode as 医保码 candidates.
    pub medical_code_pattern: regex::Regex,
}

/// Identity sessions.
#[derive(Debug, Clone)]
pub struct Session {
    /// How long a session (and its ecToken) is usable.
    pub ttl: Duration,
}

/// The daemon's logs (`[log]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    /// `tracing` filter directives (`RUST_LOG` syntax, e.g. `info` or
    /// `info,ybpos_daemon::engine=debug`); `None` keeps `RUST_LOG` (default
    /// `info`). Applied again on reload (SIGHUP).
    pub filter: Option<String>,
}
