//! A `txn.submit` before anything is sent: the parsed call ([`Submit`]), its
//! checks, the session fields filled in ([`Filled`]), the canonical hash
//! that makes resubmissions idempotent, and the sale key of gateway.md §5
//! rule 3. No I/O.

use serde_json::{Map, Value, json};
use settlement_client::catalogue::{self, TxnSpec};

use super::TxnError;
use crate::sessions::Session;

/// Transactions the engine runs itself and never takes from clients.
const INTERNAL: &[&str] = &["9001", "9002", "1162", "2601"];

/// A parsed `txn.submit`.
#[derive(Debug, Clone)]
pub struct Submit {
    /// Idempotency key.
    pub client_ref: String,
    /// Transaction number.
    pub infno: String,
    /// Identity session to fill from.
    pub session_id: Option<String>,
    /// Envelope `insuplc_admdvs` when no session is given (extension).
    pub insuplc_admdvs: Option<String>,
    /// The platform `input`.
    pub input: Map<String, Value>,
}

/// The catalogue row of a transaction clients may submit.
pub fn spec_for(infno: &str) -> Result<&'static TxnSpec, TxnError> {
    match catalogue::spec(infno) {
        Some(spec) if !INTERNAL.contains(&spec.infno) => Ok(spec),
        Some(spec) => Err(TxnError::InternalInfno(spec.infno.to_string())),
        None => Err(TxnError::UnknownInfno(infno.to_string())),
    }
}

/// A submission's input with the session's fields filled in, and what the
/// record keeps of it.
#[derive(Debug, Clone)]
pub struct Filled {
    /// The platform `input` as it will be sent.
    pub input: Map<String, Value>,
    /// Envelope `insuplc_admdvs` (empty when unknown).
    pub insuplc_admdvs: String,
    /// The person the input names (empty when none).
    pub psn_no: String,
    /// The credential type used (`01`, `02`, `03`), for `report.usage`.
    pub mdtrt_cert_type: String,
    /// Whether the input names a person (then `insuplc_admdvs` is required).
    pub input_names_psn_no: bool,
}

impl Filled {
    /// Checks what the platform requires before anything is journaled.
    pub fn check(&self, spec: &TxnSpec) -> Result<(), TxnError> {
        catalogue::check_required(spec, &Value::Object(self.input.clone()))
            .map_err(TxnError::MissingField)?;
        if self.input_names_psn_no && self.insuplc_admdvs.len() != 6 {
            return Err(TxnError::NoInsuranceArea);
        }
        Ok(())
    }
}

/// Sets `k` to `v` when the client left it out (absent, null or empty).
fn set_if_empty(obj: &mut Map<String, Value>, k: &str, v: &str) {
    let empty = match obj.get(k) {
        None | Some(Value::Null) => true,
        Some(Value::String(x)) => x.is_empty(),
        _ => false,
    };
    if empty && !v.is_empty() {
        obj.insert(k.to_string(), Value::String(v.to_string()));
    }
}

/// Fills what the client left out from the identity `session`: `psn_no`,
/// the credential (where the transaction takes one) and the `insutype`
/// (when the person has exactly one).
pub fn fill(spec: &TxnSpec, s: &Submit, session: Option<&Session>) -> Result<Filled, TxnError> {
    let mut input = s.input.clone();
    let wants = |field: &str| {
        spec.required
            .iter()
            .any(|r| r.ends_with(&format!(".{field}")))
    };
    if let Some(ses) = session {
        let node = input.entry(spec.node.to_string()).or_insert_with(|| {
            if spec
                .required
                .iter()
                .any(|r| r.starts_with(&format!("{}[]", spec.node)))
            {
                Value::Array(vec![])
            } else {
                Value::Object(Map::new())
            }
        });
        let fill_obj = |o: &mut Map<String, Value>| {
            set_if_empty(o, "psn_no", &ses.psn_no);
            if wants("mdtrt_cert_type") {
                set_if_empty(o, "mdtrt_cert_type", &ses.credential.mdtrt_cert_type);
                set_if_empty(o, "mdtrt_cert_no", &ses.credential.mdtrt_cert_no);
                if let Some(sn) = &ses.credential.card_sn {
                    set_if_empty(o, "card_sn", sn);
                }
            }
            if wants("insutype") && ses.insutypes.len() == 1 {
                set_if_empty(o, "insutype", &ses.insutypes[0]);
            }
        };
        match node {
            Value::Object(o) => fill_obj(o),
            Value::Array(items) => items
                .iter_mut()
                .filter_map(Value::as_object_mut)
                .for_each(fill_obj),
            _ => return Err(TxnError::BadNode(format!("input.{}", spec.node))),
        }
    }
    let input_v = Value::Object(input.clone());
    let psn_no = settlement_client::envelope::input_names_psn_no(&input_v).map(str::to_string);
    let insuplc_admdvs = s
        .insuplc_admdvs
        .clone()
        .or_else(|| session.map(|x| x.insuplc_admdvs.clone()))
        .unwrap_or_default();
    let mdtrt_cert_type = input
        .get(spec.node)
        .and_then(|n| n.get("mdtrt_cert_type"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| session.map(|x| x.credential.mdtrt_cert_type.clone()))
        .unwrap_or_default();
    Ok(Filled {
        input_names_psn_no: psn_no.is_some(),
        psn_no: psn_no.unwrap_or_default(),
        insuplc_admdvs,
        mdtrt_cert_type,
        input,
    })
}

/// Keys of JSON objects sorted recursively, so the same request hashes the
/// same whatever order the client wrote its fields in.
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), canonical(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// What makes a resubmission "the same request": SHA-256 over the infno,
/// the canonical input, the session and `insuplc_admdvs`.
pub fn request_hash(s: &Submit) -> String {
    let v = json!({
        "infno": s.infno,
        "input": canonical(&Value::Object(s.input.clone())),
        "session_id": s.session_id,
        "insuplc_admdvs": s.insuplc_admdvs,
    });
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        v.to_string().as_bytes(),
    ))
}

/// What makes two settlements "the same sale" (gateway.md §5 rule 3): for
/// a pharmacy sale the person and its fee lines (`feedetl_sn`, which the
/// platform requires unique per sale), whatever the amounts; for an
/// outpatient settlement the visit and charge batch; for an inpatient one
/// the stay. A cancel's key names the settlement it cancels.
pub fn sale_key(spec: &TxnSpec, input: &Map<String, Value>) -> Option<String> {
    let s = |node: &str, k: &str| -> String {
        input
            .get(node)
            .and_then(|n| n.get(k))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default()
    };
    if spec.cancels.is_some() {
        return Some(format!("cancel|{}", s("data", "setl_id")));
    }
    if !spec.settlement {
        return None;
    }
    Some(match spec.infno {
        "2102" => {
            let mut sns: Vec<String> = input
                .get("drugdetail")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|d| d.get("feedetl_sn"))
                        .map(|v| v.to_string())
                        .collect()
                })
                .unwrap_or_default();
            sns.sort();
            format!("2102|{}|{}", s("druginfo", "psn_no"), sns.join(","))
        }
        "2207" => format!("2207|{}|{}", s("data", "mdtrt_id"), s("data", "chrg_bchno")),
        other => format!("{other}|{}", s("data", "mdtrt_id")),
    })
}

/// For cancels: the `setl_id` they cancel.
pub fn cancelled_setl_id(spec: &TxnSpec, input: &Map<String, Value>) -> Option<String> {
    spec.cancels?;
    input
        .get("data")?
        .get("setl_id")?
        .as_str()
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sessions::Credential;

    fn submit(infno: &str, input: Value) -> Submit {
        Submit {
            client_ref: "r".into(),
            infno: infno.into(),
            session_id: Some("ses".into()),
            insuplc_admdvs: None,
            input: input.as_object().unwrap().clone(),
        }
    }

    fn session() -> Session {
        Session {
            id: "ses".into(),
            credential: Credential {
                mdtrt_cert_type: "01".into(),
                mdtrt_cert_no: "ec".into(),
                card_sn: None,
            },
            psn_no: "P1".into(),
            insuplc_admdvs: "421381".into(),
            insutypes: vec!["310".into()],
            expires_at: chrono::Local::now(),
        }
    }

    #[test]
    fn only_client_transactions_are_taken() {
        assert!(spec_for("2102").is_ok());
        assert!(spec_for("2207A").is_ok());
        assert!(matches!(spec_for("2601"), Err(TxnError::InternalInfno(_))));
        assert!(matches!(spec_for("7777"), Err(TxnError::UnknownInfno(_))));
    }

    #[test]
    fn the_hash_ignores_key_order_but_not_values() {
        let a = submit("2102", json!({"druginfo": {"a": 1, "b": "2"}}));
        let b = submit("2102", json!({"druginfo": {"b": "2", "a": 1}}));
        let c = submit("2102", json!({"druginfo": {"b": "2", "a": 2}}));
        assert_eq!(request_hash(&a), request_hash(&b));
        assert_ne!(request_hash(&a), request_hash(&c));
    }

    #[test]
    fn sessions_fill_what_the_client_left_out() {
        let spec = spec_for("2102").unwrap();
        let s = submit(
            "2102",
            json!({"druginfo": {"insutype": "", "medfee_sumamt": "1.00", "psn_no": "KEEP"}, "drugdetail": []}),
        );
        let f = fill(spec, &s, Some(&session())).unwrap();
        let d = &f.input["druginfo"];
        assert_eq!(d["psn_no"], "KEEP");
        assert_eq!(d["mdtrt_cert_type"], "01");
        assert_eq!(d["mdtrt_cert_no"], "ec");
        assert_eq!(d["insutype"], "310");
        assert_eq!(f.insuplc_admdvs, "421381");
        assert_eq!(f.mdtrt_cert_type, "01");
        let bad = submit("2102", json!({"druginfo": "x"}));
        assert!(
            matches!(fill(spec, &bad, Some(&session())), Err(TxnError::BadNode(f)) if f == "input.druginfo")
        );
    }

    #[test]
    fn sale_keys_name_the_sale() {
        let spec = spec_for("2102").unwrap();
        let a = json!({"druginfo": {"psn_no": "P", "medfee_sumamt": "9.00"}, "drugdetail": [{"feedetl_sn": "2"}, {"feedetl_sn": "1"}]});
        // The same lines at another amount are the same sale (defect 8b).
        let b = json!({"druginfo": {"psn_no": "P", "medfee_sumamt": "8.00"}, "drugdetail": [{"feedetl_sn": "1"}, {"feedetl_sn": "2"}]});
        let ka = sale_key(spec, a.as_object().unwrap());
        assert_eq!(ka, sale_key(spec, b.as_object().unwrap()));
        assert_eq!(ka.as_deref(), Some("2102|P|\"1\",\"2\""));
        let cancel = spec_for("2103").unwrap();
        let c = json!({"data": {"setl_id": "S"}});
        assert_eq!(
            sale_key(cancel, c.as_object().unwrap()).as_deref(),
            Some("cancel|S")
        );
        assert_eq!(
            cancelled_setl_id(cancel, c.as_object().unwrap()).as_deref(),
            Some("S")
        );
        assert_eq!(
            sale_key(spec_for("2101").unwrap(), a.as_object().unwrap()),
            None
        );
    }
}
