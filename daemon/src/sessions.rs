//! Identity sessions: what a `scan.wait` / `identity.lookup` learned, kept for
//! the transactions that follow (`txn.submit` with `session_id`).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Local};
use rand::Rng;

/// The credential a session carries (gateway.md §1 step 3).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// `01` ecToken, `02` ID card, `03` social-security card.
    pub mdtrt_cert_type: String,
    /// The ecToken, ID number or card number.
    pub mdtrt_cert_no: String,
    /// Card serial (type `03`).
    pub card_sn: Option<String>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("mdtrt_cert_type", &self.mdtrt_cert_type)
            .field(
                "mdtrt_cert_no",
                &settlement_client::redact::Masked(&self.mdtrt_cert_no),
            )
            .finish()
    }
}

/// One identity session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Opaque id handed to the client.
    pub id: String,
    /// The credential for later transactions.
    pub credential: Credential,
    /// The platform's person number.
    pub psn_no: String,
    /// Where the person is insured (envelope `insuplc_admdvs`).
    pub insuplc_admdvs: String,
    /// The person's insurance types (filled into `insutype` when exactly one).
    pub insutypes: Vec<String>,
    /// When the session (and its ecToken) stops being usable.
    pub expires_at: DateTime<Local>,
}

/// The session store; expired sessions are dropped as they are met.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

/// Sessions kept at most; the oldest are dropped beyond this (bounded memory).
pub const MAX_SESSIONS: usize = 10_000;

impl Sessions {
    /// Stores a session and returns its id.
    pub fn insert(&self, mut s: Session) -> Session {
        let mut rng = rand::thread_rng();
        s.id = format!("ses_{:016x}{:08x}", rng.r#gen::<u64>(), rng.r#gen::<u32>());
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let now = Local::now();
        m.retain(|_, v| v.expires_at > now);
        if m.len() >= MAX_SESSIONS
            && let Some(oldest) = m
                .values()
                .min_by_key(|v| v.expires_at)
                .map(|v| v.id.clone())
        {
            m.remove(&oldest);
        }
        m.insert(s.id.clone(), s.clone());
        s
    }

    /// A live session, or `None` when unknown or expired.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match m.get(id) {
            Some(s) if s.expires_at > Local::now() => Some(s.clone()),
            Some(_) => {
                m.remove(id);
                None
            }
            None => None,
        }
    }
}
