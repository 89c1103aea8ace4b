//! Who is at the counter: decode (for a 医保码) and 1101, into a session.
//!
//! The same result for every credential, so patients without a smartphone
//! (ID card `02`, social-security card `03`) are served exactly like those
//! who show the code (`01`). A lookup ends in an [`Identified`] person or a
//! [`LookupError`]; the API renders both.

use std::sync::Arc;

use chrono::Local;
use serde_json::{Map, Value, json};
use settlement_client::decode::{DecodeContext, Decoded};
use settlement_client::redact::Masked;
use settlement_client::{Gateway, Outcome};
use tracing::{Instrument, info, warn};

use crate::sessions::{Credential, Session, Sessions};

/// Why an identity lookup failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// Decode refused the code (used, expired, not a 医保码 …).
    #[error("decode refused the code ({code}): {message}")]
    DecodeRefused {
        /// The platform's code.
        code: i64,
        /// The platform's message.
        message: String,
    },
    /// 1101 refused the person (unknown, not insured …).
    #[error("1101 refused ({infcode}): {err_msg}")]
    Rejected {
        /// The platform's `infcode`.
        infcode: i64,
        /// The platform's message.
        err_msg: String,
    },
    /// The gateway could not be reached, or did not answer.
    #[error("the gateway could not be reached: {0}")]
    Unreachable(String),
}

/// A resolved person, with the session later transactions use.
#[derive(Debug, Clone)]
pub struct Identified {
    /// The new session (credential, psn_no, where insured, expiry).
    pub session: Session,
    /// The decode answer's data (医保码 only).
    pub decode: Option<Map<String, Value>>,
    /// The 1101 `output` as the platform sent it (`baseinfo`, `insuinfo`, `idetinfo`).
    pub person: Value,
}

/// A credential as given by the client (`identity.lookup` `credential`).
#[derive(Clone)]
pub enum Given {
    /// A scanned or typed 医保码.
    Qr(String),
    /// ID card number and name (`02`).
    IdCard {
        /// ID number.
        certno: String,
        /// Name (checked by the gateway when given).
        psn_name: Option<String>,
        /// Read from the card's chip by a card reader, not typed (a kiosk
        /// takes only these).
        read_from_card: bool,
    },
    /// Social-security card (`03`).
    SsCard {
        /// Card number.
        card_no: String,
        /// Card serial.
        card_sn: String,
    },
}

impl std::fmt::Debug for Given {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Given::Qr(_) => "Given::Qr",
            Given::IdCard { .. } => "Given::IdCard",
            Given::SsCard { .. } => "Given::SsCard",
        })
    }
}

/// Counts a gateway call in `ybpos_gateway_calls_total`.
fn count(infno: &str, outcome: &str) {
    crate::metrics::global()
        .gateway_calls
        .inc(&[infno, outcome]);
}

/// Resolves identities against the gateway.
#[derive(Debug)]
pub struct Identity {
    gateway: Arc<Gateway>,
    sessions: Arc<Sessions>,
    ttl: chrono::Duration,
}

impl Identity {
    /// Identity lookups through `gateway`, sessions living `ttl`.
    pub fn new(gateway: Arc<Gateway>, sessions: Arc<Sessions>, ttl: std::time::Duration) -> Self {
        Identity {
            gateway,
            sessions,
            ttl: chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(10)),
        }
    }

    /// Decode (if a code) + 1101 → the person, with a new session.
    pub async fn lookup(
        &self,
        business_type: &str,
        given: Given,
    ) -> Result<Identified, LookupError> {
        let span = tracing::info_span!("identity", business_type, credential = ?given);
        self.lookup_inner(business_type, given)
            .instrument(span)
            .await
    }

    async fn lookup_inner(
        &self,
        business_type: &str,
        given: Given,
    ) -> Result<Identified, LookupError> {
        let (credential, decode, input) = match given {
            Given::Qr(code) => {
                let d = self.decode(business_type, &code).await?;
                let (credential, input) = qr_query(&d);
                (credential, Some(d.data), input)
            }
            Given::IdCard {
                certno, psn_name, ..
            } => {
                let input = json!({"data": {
                    "mdtrt_cert_type": "02",
                    "mdtrt_cert_no": certno,
                    "card_sn": "",
                    "begntime": "",
                    "psn_cert_type": "01",
                    "certno": certno,
                    "psn_name": psn_name.clone().unwrap_or_default(),
                }});
                let cred = Credential {
                    mdtrt_cert_type: "02".into(),
                    mdtrt_cert_no: certno,
                    card_sn: None,
                };
                (cred, None, input)
            }
            Given::SsCard { card_no, card_sn } => {
                let input = json!({"data": {
                    "mdtrt_cert_type": "03",
                    "mdtrt_cert_no": card_no,
                    "card_sn": card_sn,
                    "begntime": "",
                    "psn_cert_type": "",
                    "certno": "",
                    "psn_name": "",
                }});
                let cred = Credential {
                    mdtrt_cert_type: "03".into(),
                    mdtrt_cert_no: card_no,
                    card_sn: Some(card_sn),
                };
                (cred, None, input)
            }
        };
        let person = self.person(input).await?;
        let session =
            self.sessions
                .insert(new_session(credential, &person, Local::now() + self.ttl)?);
        info!(session = %session.id, psn_no = %Masked(&session.psn_no), "Identity resolved.");
        Ok(Identified {
            session,
            decode,
            person,
        })
    }

    /// Decodes a 医保码 at the gateway (1162 or the bare decode).
    async fn decode(&self, business_type: &str, code: &str) -> Result<Decoded, LookupError> {
        let t = self.gateway.terminal();
        let ctx = DecodeContext {
            business_type: business_type.to_string(),
            org_id: t.fixmedins_code.clone(),
            operator_id: t.opter.clone(),
            operator_name: t.opter_name.clone(),
            // Kiosk mode (opter_type 2): decode is told it is a self-service machine.
            device_type: if t.opter_type == "2" {
                "SelfService".into()
            } else {
                String::new()
            },
            ..DecodeContext::default()
        };
        let outcome = self.gateway.decode(code, &ctx).await;
        count("1162", outcome.class());
        match outcome {
            Outcome::Ok(d) => Ok(d),
            Outcome::Rejected { infcode, err_msg } => {
                info!(code = %Masked(code), infcode, "Decode refused the code.");
                Err(LookupError::DecodeRefused {
                    code: infcode,
                    message: err_msg,
                })
            }
            Outcome::NotSent { reason } | Outcome::Unknown { reason } => {
                warn!(%reason, "Decode did not complete.");
                Err(LookupError::Unreachable(reason))
            }
        }
    }

    /// 1101: the person behind a credential (the platform's `output`).
    async fn person(&self, input: Value) -> Result<Value, LookupError> {
        let outcome = self.gateway.call("1101", input, "").await;
        count("1101", outcome.class());
        match outcome {
            Outcome::Ok(r) => Ok(r.output.unwrap_or(Value::Null)),
            Outcome::Rejected { infcode, err_msg } => {
                info!(infcode, "1101 refused.");
                Err(LookupError::Rejected { infcode, err_msg })
            }
            Outcome::NotSent { reason } | Outcome::Unknown { reason } => {
                warn!(%reason, "1101 did not complete.");
                Err(LookupError::Unreachable(reason))
            }
        }
    }
}

/// The credential and 1101 input of a decoded 医保码 (`01`, the ecToken).
fn qr_query(d: &Decoded) -> (Credential, Value) {
    let cred = Credential {
        mdtrt_cert_type: "01".into(),
        mdtrt_cert_no: d.ec_token().to_string(),
        card_sn: None,
    };
    let input = json!({"data": {
        "mdtrt_cert_type": "01",
        "mdtrt_cert_no": d.ec_token(),
        "card_sn": "",
        "begntime": "",
        "psn_cert_type": d.id_type(),
        "certno": d.id_no(),
        "psn_name": d.user_name(),
    }});
    (cred, input)
}

/// A session for the person 1101 answered (its id is set when stored).
fn new_session(
    credential: Credential,
    person: &Value,
    expires_at: chrono::DateTime<Local>,
) -> Result<Session, LookupError> {
    let psn_no = person
        .pointer("/baseinfo/psn_no")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if psn_no.is_empty() {
        return Err(LookupError::Rejected {
            infcode: -1,
            err_msg: "1101 answered without baseinfo.psn_no".into(),
        });
    }
    let insu: &[Value] = person
        .get("insuinfo")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let insuplc_admdvs = insu
        .iter()
        .find_map(|i| i.get("insuplc_admdvs").and_then(Value::as_str))
        .unwrap_or_default()
        .to_string();
    let insutypes = insu
        .iter()
        .filter_map(|i| i.get("insutype").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    Ok(Session {
        id: String::new(),
        credential,
        psn_no,
        insuplc_admdvs,
        insutypes,
        expires_at,
    })
}
