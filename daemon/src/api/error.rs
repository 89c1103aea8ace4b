//! API errors: the codes and `data.kind` names of local-api.md, in one
//! place, and how each domain error maps to them (`From<…> for ApiError`).

use serde_json::{Map, Value, json};

use crate::engine::{TxnError, TxnKey};
use crate::identity::LookupError;
use crate::scanhub::WaitError;
use crate::service::{DemoError, ServiceError};

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// JSON-RPC error code.
    pub code: i64,
    /// Human-readable message.
    pub message: String,
    /// `data`, always with `kind`.
    pub data: Map<String, Value>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.kind(), self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// An error with `kind` and extra data fields.
    pub fn new(code: i64, kind: &str, message: impl Into<String>, extra: Value) -> Self {
        let mut data = Map::new();
        data.insert("kind".into(), Value::String(kind.into()));
        if let Value::Object(m) = extra {
            data.extend(m);
        }
        ApiError {
            code,
            message: message.into(),
            data,
        }
    }

    /// The `data.kind` name.
    pub fn kind(&self) -> &str {
        self.data.get("kind").and_then(Value::as_str).unwrap_or("")
    }

    /// The `error` member of a response.
    pub fn to_json(&self) -> Value {
        json!({"code": self.code, "message": self.message, "data": self.data})
    }

    /// -32700: the line is not JSON.
    pub fn parse_error(detail: impl std::fmt::Display) -> Self {
        Self::new(
            -32700,
            "parse_error",
            format!("not valid JSON: {detail}"),
            json!({}),
        )
    }
    /// -32600: JSON, but not a JSON-RPC 2.0 request.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(-32600, "invalid_request", message, json!({}))
    }
    /// -32601.
    pub fn method_not_found(method: &str) -> Self {
        Self::new(
            -32601,
            "method_not_found",
            format!("no method {method:?}"),
            json!({"method": method}),
        )
    }
    /// -32602, naming the field.
    pub fn invalid_params(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(
            -32602,
            "invalid_params",
            format!("{field}: {message}"),
            json!({"field": field}),
        )
    }
    /// -32603.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(-32603, "internal", message, json!({}))
    }
    /// 1001.
    pub fn scan_timeout(ms: u64) -> Self {
        Self::new(
            1001,
            "scan_timeout",
            format!("nothing was scanned within {ms} ms"),
            json!({"timeout_ms": ms}),
        )
    }
    /// 1002, with the class of what was scanned.
    pub fn not_medical_code(class: &str, hint: &str) -> Self {
        Self::new(1002, "not_medical_code", hint, json!({"class": class}))
    }
    /// 1003.
    pub fn scanner_busy(scanner: &str) -> Self {
        Self::new(
            1003,
            "scanner_busy",
            format!("another wait holds scanner {scanner:?}"),
            json!({"scanner": scanner}),
        )
    }
    /// 1004.
    pub fn scanner_unavailable(scanner: &str, why: &str) -> Self {
        Self::new(
            1004,
            "scanner_unavailable",
            format!("scanner {scanner:?} {why}"),
            json!({"scanner": scanner}),
        )
    }
    /// 2001: not sent, safe to retry.
    pub fn gateway_unreachable(reason: &str) -> Self {
        Self::new(
            2001,
            "gateway_unreachable",
            format!("the gateway could not be reached: {reason}"),
            json!({}),
        )
    }
    /// 2002: the gateway said no.
    pub fn gateway_rejected(infcode: i64, err_msg: &str) -> Self {
        Self::new(
            2002,
            "gateway_rejected",
            err_msg.to_string(),
            json!({"infcode": infcode, "err_msg": err_msg}),
        )
    }
    /// 2003: the outcome is unknown; the daemon is resolving it.
    pub fn outcome_unknown(txn_id: &str, reason: &str) -> Self {
        Self::new(
            2003,
            "outcome_unknown",
            format!("outcome unknown ({reason}); the daemon is resolving it"),
            json!({"txn_id": txn_id}),
        )
    }
    /// 2004: decode refused the code.
    pub fn decode_failed(code: i64, message: &str) -> Self {
        Self::new(
            2004,
            "decode_failed",
            message.to_string(),
            json!({"code": code, "message": message}),
        )
    }
    /// 3001.
    pub fn duplicate_client_ref(client_ref: &str) -> Self {
        Self::new(
            3001,
            "duplicate_client_ref",
            format!("client_ref {client_ref:?} was used for a different request"),
            json!({"client_ref": client_ref}),
        )
    }
    /// 3003: the sale has a settlement in effect.
    pub fn already_settled(txn_id: &str) -> Self {
        Self::new(
            3003,
            "already_settled",
            format!(
                "this sale is settled by {txn_id}; cancel that settlement before selling it again"
            ),
            json!({"txn_id": txn_id}),
        )
    }
    /// 3002.
    pub fn session_expired(session_id: &str) -> Self {
        Self::new(
            3002,
            "session_expired",
            "the identity session has expired; scan or look up again",
            json!({"session_id": session_id}),
        )
    }
    /// 4001.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(4001, "unauthorized", message, json!({}))
    }
    /// 5001.
    pub fn overloaded(message: impl Into<String>) -> Self {
        Self::new(5001, "overloaded", message, json!({}))
    }
}

impl From<WaitError> for ApiError {
    fn from(e: WaitError) -> Self {
        match e {
            WaitError::NoScanner => Self::scanner_unavailable("", "— no scanner is configured"),
            WaitError::NotConfigured(id) => Self::scanner_unavailable(&id, "is not configured"),
            WaitError::Absent(id) => Self::scanner_unavailable(&id, "is not connected"),
            WaitError::Faulty { scanner, error } => {
                Self::scanner_unavailable(&scanner, &format!("has an error: {error}"))
            }
            WaitError::Busy(id) => Self::scanner_busy(&id),
            WaitError::Gone(id) => Self::scanner_unavailable(&id, "went away during the wait"),
            WaitError::Timeout(t) => Self::scan_timeout(t.as_millis() as u64),
            WaitError::PaymentCode(k, to) => Self::not_medical_code(k.as_str(), k.hint(to)),
            WaitError::Cancelled => Self::internal("client disconnected"),
        }
    }
}

impl From<LookupError> for ApiError {
    fn from(e: LookupError) -> Self {
        match e {
            LookupError::DecodeRefused { code, message } => Self::decode_failed(code, &message),
            LookupError::Rejected { infcode, err_msg } => Self::gateway_rejected(infcode, &err_msg),
            LookupError::Unreachable(reason) => Self::gateway_unreachable(&reason),
        }
    }
}

impl From<TxnError> for ApiError {
    fn from(e: TxnError) -> Self {
        match e {
            TxnError::InternalInfno(_) => {
                Self::invalid_params("infno", "this transaction is run by the daemon itself")
            }
            TxnError::UnknownInfno(infno) => {
                Self::invalid_params("infno", format!("unknown transaction {infno:?}"))
            }
            TxnError::MissingField(field) => {
                Self::invalid_params(&field, "is required for this transaction")
            }
            TxnError::NoInsuranceArea => Self::invalid_params(
                "insuplc_admdvs",
                "give session_id (or insuplc_admdvs) so the envelope names where the person is insured",
            ),
            TxnError::BadNode(field) => Self::invalid_params(&field, "must be an object or a list"),
            TxnError::SessionExpired(id) => Self::session_expired(&id),
            TxnError::DuplicateClientRef(r) => Self::duplicate_client_ref(&r),
            TxnError::SaleUnresolved { txn_id } => Self::outcome_unknown(
                &txn_id,
                "an earlier attempt of this sale is still being resolved; follow it with txn.get",
            ),
            TxnError::AlreadySettled { txn_id } => Self::already_settled(&txn_id),
            e @ TxnError::NotClosable { .. } => Self::invalid_params("txn_id", e.to_string()),
            TxnError::GatewayUnreachable(reason) => Self::gateway_unreachable(&reason),
            TxnError::Prepare(e) => Self::internal(e),
            TxnError::Journal(e) => Self::internal(e.to_string()),
            TxnError::Vanished => Self::internal("record vanished"),
            TxnError::Transition(e) => Self::internal(e.to_string()),
            TxnError::NotFound(TxnKey::TxnId(_)) => {
                Self::invalid_params("txn_id", "no such transaction")
            }
            TxnError::NotFound(TxnKey::ClientRef(_)) => {
                Self::invalid_params("client_ref", "no such transaction")
            }
        }
    }
}

impl From<DemoError> for ApiError {
    fn from(e: DemoError) -> Self {
        match e {
            DemoError::NoSuchPerson(_) => Self::invalid_params("person", e.to_string()),
            DemoError::UnknownKind(_) => Self::invalid_params("kind", e.to_string()),
            DemoError::Write(_) => Self::internal(e.to_string()),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Wait(e) => e.into(),
            ServiceError::Lookup(e) => e.into(),
            ServiceError::Txn(e) => e.into(),
            ServiceError::Demo(e) => e.into(),
            ServiceError::NoSuchSubscription => {
                Self::invalid_params("subscription", "no such subscription on this connection")
            }
            ServiceError::NeedsLongLivedConnection => Self::invalid_request(
                "events need a long-lived connection: use the Unix socket or the WebSocket",
            ),
            ServiceError::NotDemo => Self::method_not_found("demo.scan"),
            ServiceError::KioskTypedIdNumber => Self::new(
                4001,
                "unauthorized",
                "a self-service kiosk looks people up by 医保码, social-security card, or an ID \
                 card read by the card reader (credential.read_from_card: true), not by a typed \
                 ID number",
                json!({"reason": "kiosk_typed_id_number"}),
            ),
            ServiceError::TaskFailed(e) => Self::internal(e),
        }
    }
}
