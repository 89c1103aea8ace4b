//! The simulated platform's state and its transaction handlers.
//!
//! Sans-IO: every handler takes the parsed request and `now`, mutates the
//! state, and returns the response body. The HTTP server, faults and auth
//! live in `server`.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, Local};
use rand::Rng;
use serde_json::{Value, json};
use settlement_client::decode;
use settlement_client::envelope::{Request, Response, input_names_psn_no};
use settlement_client::money::Money;
use settlement_client::msgid::MsgId;

use crate::ledger::{AccountView, Ledger, ReversalRecord, SettlementRecord, Visit};
use crate::people::{self, Person};

/// Lifetimes and identity of the simulated platform.
#[derive(Debug, Clone)]
pub struct SimSettings {
    /// How long an issued 医保码 can be decoded.
    pub code_ttl: Duration,
    /// How long an ecToken is valid.
    pub token_ttl: Duration,
    /// The platform's own admin division (prefix of `inf_refmsgid`).
    pub admdvs: String,
    /// Answer a 2601 of a msgid that was never committed with `infcode 0`
    /// (some platforms do not look), recording nothing, so an original that
    /// lands later stays in effect. Off: "原交易不存在".
    pub reverse_unknown_ok: bool,
}

impl Default for SimSettings {
    fn default() -> Self {
        SimSettings {
            code_ttl: Duration::seconds(60),
            token_ttl: Duration::minutes(10),
            admdvs: "420000".into(),
            reverse_unknown_ok: false,
        }
    }
}

/// An issued test code.
#[derive(Debug, Clone)]
pub struct IssuedCode {
    /// Index into the people.
    pub person: usize,
    /// Decode refuses it after this.
    pub expires_at: DateTime<Local>,
    /// Decoded once already.
    pub used: bool,
}

#[derive(Debug, Clone)]
struct Token {
    person: usize,
    expires_at: DateTime<Local>,
}

/// A simulated person with a live balance.
#[derive(Debug, Clone)]
pub struct Account {
    /// Who.
    pub person: Person,
    /// Personal-account balance now.
    pub balance: Money,
}

/// The whole simulated platform.
#[derive(Debug)]
pub struct State {
    /// Settings.
    pub settings: SimSettings,
    /// People and balances.
    pub accounts: Vec<Account>,
    codes: HashMap<String, IssuedCode>,
    tokens: HashMap<String, Token>,
    sign_nos: HashSet<String>,
    /// Every msgid received with a valid envelope, and its infno.
    pub(crate) msgids: HashMap<String, String>,
    serial: u64,
    /// Visits by `mdtrt_id`.
    pub(crate) visits: BTreeMap<String, Visit>,
    /// Settlement and cancel records in commit order.
    pub(crate) records: Vec<SettlementRecord>,
    /// What each committed reversible request did (by msgid).
    pub(crate) committed: HashMap<String, Committed>,
    /// Every 2601 received.
    pub(crate) reversals: Vec<ReversalRecord>,
    /// Msgids undone by 2601.
    pub(crate) reversed: HashSet<String>,
    /// Counter behind `mdtrt_id` and `setl_id`.
    pub(crate) ids: u64,
}

/// What a committed reversible request did, so 2601 can undo exactly that.
#[derive(Debug, Clone)]
pub(crate) struct Committed {
    /// As sent (`2207A` stays `2207A`).
    pub(crate) infno: String,
    /// The person it named.
    pub(crate) psn_no: String,
    /// The effect.
    pub(crate) effect: Effect,
}

/// The effect of a committed reversible request.
#[derive(Debug, Clone)]
pub(crate) enum Effect {
    /// Created settlement or cancel record `records[i]`.
    Record(usize),
    /// Opened inpatient visit `mdtrt_id` (2401).
    Admission(String),
}

impl State {
    /// A fresh platform with the built-in people.
    pub fn new(settings: SimSettings) -> Self {
        State {
            settings,
            accounts: people::builtin()
                .into_iter()
                .map(|p| Account {
                    balance: p.balance,
                    person: p,
                })
                .collect(),
            codes: HashMap::new(),
            tokens: HashMap::new(),
            sign_nos: HashSet::new(),
            msgids: HashMap::new(),
            serial: 0,
            visits: BTreeMap::new(),
            records: Vec::new(),
            committed: HashMap::new(),
            reversals: Vec::new(),
            reversed: HashSet::new(),
            ids: 0,
        }
    }

    /// A snapshot of the books (balances, visits, settlements, reversals).
    pub fn ledger(&self) -> Ledger {
        Ledger {
            accounts: self
                .accounts
                .iter()
                .map(|a| AccountView {
                    psn_no: a.person.psn_no.to_string(),
                    initial: a.person.balance,
                    current: a.balance,
                })
                .collect(),
            visits: self.visits.values().cloned().collect(),
            settlements: self.records.clone(),
            reversals: self.reversals.clone(),
        }
    }

    /// Forgets every sign-in, as the platform does at its daily cut-off:
    /// the next request with an old `sign_no` is refused.
    pub fn expire_sign_ins(&mut self) {
        self.sign_nos.clear();
    }

    /// Whether `sign_no` is currently signed in (9001 issued it, no 9002 yet).
    pub fn is_signed_in(&self, sign_no: &str) -> bool {
        self.sign_nos.contains(sign_no)
    }

    /// How many sign-ins are open.
    pub fn open_sign_ins(&self) -> usize {
        self.sign_nos.len()
    }

    /// Whether a request with this msgid arrived with a valid envelope.
    pub fn saw_msgid(&self, msgid: &str) -> bool {
        self.msgids.contains_key(msgid)
    }

    /// Finds a person by index, `psn_no`, certno or name.
    pub fn find_person(&self, key: &str) -> Option<usize> {
        if let Ok(i) = key.parse::<usize>()
            && i < self.accounts.len()
        {
            return Some(i);
        }
        self.accounts.iter().position(|a| {
            a.person.psn_no == key
                || a.person.certno == key
                || a.person.name == key
                || a.person.card_no == key
        })
    }

    /// Issues a fresh single-use 医保码 for person `idx`.
    pub fn issue_code(&mut self, idx: usize, now: DateTime<Local>) -> (String, IssuedCode) {
        let mut rng = rand::thread_rng();
        let admdvs = self.accounts[idx]
            .person
            .insurances
            .first()
            .map(|i| i.insuplc_admdvs)
            .unwrap_or("420000");
        // 28 digits ending in the 6-digit region code, like the one public sample.
        let head: String = (0..22)
            .map(|i| char::from(b'0' + rng.gen_range(if i == 0 { 4..10 } else { 0..10 })))
            .collect();
        let code = format!("{head}{admdvs}");
        let issued = IssuedCode {
            person: idx,
            expires_at: now + self.settings.code_ttl,
            used: false,
        };
        self.codes.insert(code.clone(), issued.clone());
        (code, issued)
    }

    fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    /// Wraps a response with the receiver's ids and times.
    pub fn stamp(&mut self, mut r: Response, now: DateTime<Local>) -> Response {
        let serial = self.next_serial();
        let t17 = now.format("%Y%m%d%H%M%S%3f").to_string();
        r.inf_refmsgid = Some(format!(
            "{}{}{:010}",
            self.settings.admdvs,
            now.format("%Y%m%d%H%M%S"),
            serial
        ));
        r.refmsg_time = Some(t17.clone());
        r.respond_time = Some(t17);
        r
    }

    /// Checks the §2 envelope rules; `Err` is the platform's refusal message.
    pub fn check_envelope(&mut self, req: &Request) -> Result<(), String> {
        if MsgId::parse(&req.msgid).is_err() {
            return Err(format!("FSI-报文ID格式错误: {:?}", req.msgid));
        }
        if !req.msgid.starts_with(&req.fixmedins_code) || req.fixmedins_code.len() != 12 {
            return Err("FSI-报文ID与定点医药机构编号不符".into());
        }
        if req.infno != "9001" && !self.sign_nos.contains(&req.sign_no) {
            return Err("FSI-签到编号无效，请重新签到".into());
        }
        if let Some(psn_no) = input_names_psn_no(&req.input) {
            if req.insuplc_admdvs.len() != 6 {
                return Err("FSI-参保地医保区划(insuplc_admdvs)不能为空".into());
            }
            if let Some(a) = self.accounts.iter().find(|a| a.person.psn_no == psn_no)
                && !a
                    .person
                    .insurances
                    .iter()
                    .any(|i| i.insuplc_admdvs == req.insuplc_admdvs)
            {
                return Err(format!(
                    "FSI-参保地医保区划({})与人员参保信息不符",
                    req.insuplc_admdvs
                ));
            }
        }
        if self.msgids.contains_key(&req.msgid) {
            return Err(format!("FSI-报文ID重复: {}", req.msgid));
        }
        self.msgids.insert(req.msgid.clone(), req.infno.clone());
        Ok(())
    }

    /// Handles one enveloped transaction (after the envelope check).
    pub fn handle(&mut self, req: &Request, now: DateTime<Local>) -> Response {
        let spec = settlement_client::catalogue::spec(&req.infno);
        if let Some(spec) = spec
            && let Err(field) = settlement_client::catalogue::check_required(spec, &req.input)
        {
            let r = Response::failure(format!("FSI-入参校验失败: {field}不能为空"));
            return self.stamp(r, now);
        }
        let r = match spec.map(|s| s.infno) {
            Some("9001") => self.sign_in(req, now),
            Some("9002") => self.sign_out(req, now),
            Some("1101") => self.person_info(req, now),
            Some(infno) => match self.business(infno, req, now) {
                Some(Ok(output)) => Response::success(output),
                Some(Err(msg)) => Response::failure(msg),
                None => Response::failure(format!("FSI-交易编号{}未开通", req.infno)),
            },
            None => Response::failure(format!("FSI-交易编号{}未开通", req.infno)),
        };
        self.stamp(r, now)
    }

    fn sign_in(&mut self, req: &Request, now: DateTime<Local>) -> Response {
        let n = self.next_serial();
        let sign_no = format!("{}{:06}", now.format("%H%M%S"), n % 1_000_000);
        self.sign_nos.insert(sign_no.clone());
        let _ = req;
        Response::success(
            json!({"signinoutb": {"sign_no": sign_no, "sign_time": now.format("%Y-%m-%d %H:%M:%S").to_string()}}),
        )
    }

    fn sign_out(&mut self, req: &Request, now: DateTime<Local>) -> Response {
        let sign_no = req
            .input
            .pointer("/signOut/sign_no")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !self.sign_nos.remove(sign_no) {
            return Response::failure("FSI-签退失败: 签到编号不存在");
        }
        Response::success(
            json!({"signoutoutb": {"sign_time": now.format("%Y-%m-%d %H:%M:%S").to_string()}}),
        )
    }

    /// Decode (1162): single use, expiry, ecToken issue. Returns the decode data or the error body.
    pub fn decode(&mut self, data: &Value, now: DateTime<Local>) -> Result<Value, Value> {
        let code = data
            .get("ecQrCode")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let bt = data
            .get("businessType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if bt.len() != 5 || !bt.bytes().all(|b| b.is_ascii_digit()) {
            return Err(decode::error_body(
                500100,
                "用码业务类型(businessType)不正确",
            ));
        }
        let Some(issued) = self.codes.get_mut(code) else {
            return Err(decode::error_body(
                decode::NOT_A_MEDICAL_CODE.0,
                decode::NOT_A_MEDICAL_CODE.1,
            ));
        };
        if issued.used {
            return Err(decode::error_body(decode::CODE_USED.0, decode::CODE_USED.1));
        }
        if now > issued.expires_at {
            return Err(decode::error_body(
                decode::CODE_EXPIRED.0,
                decode::CODE_EXPIRED.1,
            ));
        }
        issued.used = true;
        let idx = issued.person;
        let p = &self.accounts[idx].person;
        let insu_org = p
            .insurances
            .first()
            .map(|i| i.insuplc_admdvs)
            .unwrap_or_default();
        let mut rng = rand::thread_rng();
        const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let tail: String = (0..30)
            .map(|_| ALNUM[rng.gen_range(0..ALNUM.len())] as char)
            .collect();
        let token = format!("{insu_org}ec{tail}");
        let index_no: String = (0..32)
            .map(|_| b"0123456789ABCDEF"[rng.gen_range(0..16)] as char)
            .collect();
        let out = json!({
            "ecToken": token,
            "idNo": p.certno,
            "idType": "01",
            "userName": p.name,
            "insuOrg": insu_org,
            "ecIndexNo": index_no,
            "gender": p.gend,
            "birthday": p.brdy.replace('-', "."),
            "nationality": "01",
        });
        self.tokens.insert(
            token,
            Token {
                person: idx,
                expires_at: now + self.settings.token_ttl,
            },
        );
        Ok(out)
    }

    /// Resolves a credential (`mdtrt_cert_type` + number) to a person.
    pub fn resolve_credential(&self, data: &Value, now: DateTime<Local>) -> Result<usize, String> {
        let s = |k: &str| data.get(k).and_then(Value::as_str).unwrap_or_default();
        let no = s("mdtrt_cert_no");
        match s("mdtrt_cert_type") {
            "01" => match self.tokens.get(no) {
                Some(t) if now <= t.expires_at => Ok(t.person),
                Some(_) => Err("FSI-电子凭证令牌(ecToken)已过期，请重新扫码".into()),
                None => Err("FSI-电子凭证令牌(ecToken)无效".into()),
            },
            "02" => {
                let idx = self
                    .accounts
                    .iter()
                    .position(|a| a.person.certno.eq_ignore_ascii_case(no))
                    .ok_or("FSI-未查询到该身份证号的参保信息")?;
                let name = s("psn_name");
                if !name.is_empty() && name != self.accounts[idx].person.name {
                    return Err("FSI-身份证号与姓名不符".into());
                }
                Ok(idx)
            }
            "03" => {
                let idx = self
                    .accounts
                    .iter()
                    .position(|a| a.person.card_no == no)
                    .ok_or("FSI-未查询到该社会保障卡的参保信息")?;
                if s("card_sn") != self.accounts[idx].person.card_sn {
                    return Err("FSI-社会保障卡卡识别码(card_sn)不符".into());
                }
                Ok(idx)
            }
            other => Err(format!(
                "FSI-就诊凭证类型(mdtrt_cert_type)不正确: {other:?}"
            )),
        }
    }

    fn person_info(&mut self, req: &Request, now: DateTime<Local>) -> Response {
        let data = req.input.get("data").cloned().unwrap_or(Value::Null);
        let idx = match self.resolve_credential(&data, now) {
            Ok(i) => i,
            Err(e) => return Response::failure(e),
        };
        let a = &self.accounts[idx];
        let p = &a.person;
        let age = now.format("%Y").to_string().parse::<i32>().unwrap_or(2026)
            - p.brdy[..4].parse::<i32>().unwrap_or(1980);
        let insuinfo: Vec<Value> = p
            .insurances
            .iter()
            .map(|i| {
                json!({
                    "balc": if i.insutype == "310" { a.balance.to_json() } else { Money::ZERO.to_json() },
                    "insutype": i.insutype,
                    "psn_type": i.psn_type,
                    "psn_insu_stas": "1",
                    "psn_insu_date": "2010-01-01",
                    "paus_insu_date": null,
                    "cvlserv_flag": "0",
                    "insuplc_admdvs": i.insuplc_admdvs,
                    "emp_name": i.emp_name,
                })
            })
            .collect();
        Response::success(json!({
            "baseinfo": {
                "psn_no": p.psn_no,
                "psn_cert_type": "01",
                "certno": p.certno,
                "psn_name": p.name,
                "gend": p.gend,
                "naty": "01",
                "brdy": p.brdy,
                "age": age,
            },
            "insuinfo": insuinfo,
            "idetinfo": [],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Local> {
        Local::now()
    }

    #[test]
    fn codes_are_single_use_and_expire() {
        let mut s = State::new(SimSettings::default());
        let t = now();
        let (code, _) = s.issue_code(0, t);
        assert_eq!(code.len(), 28);
        let d = json!({"ecQrCode": code, "businessType": "02121"});
        let ok = s.decode(&d, t).unwrap();
        assert_eq!(ok["userName"], "张三");
        assert_eq!(ok["ecToken"].as_str().unwrap().len(), 38);
        assert_eq!(s.decode(&d, t).unwrap_err()["code"], decode::CODE_USED.0);
        let (code2, _) = s.issue_code(1, t);
        let late = t + Duration::seconds(61);
        assert_eq!(
            s.decode(&json!({"ecQrCode": code2, "businessType": "02121"}), late)
                .unwrap_err()["code"],
            decode::CODE_EXPIRED.0
        );
        assert_eq!(
            s.decode(
                &json!({"ecQrCode": "131234567890123456", "businessType": "02121"}),
                t
            )
            .unwrap_err()["code"],
            decode::NOT_A_MEDICAL_CODE.0
        );
    }

    #[test]
    fn credentials_of_all_three_kinds() {
        let mut s = State::new(SimSettings::default());
        let t = now();
        let (code, _) = s.issue_code(2, t);
        let tok = s
            .decode(&json!({"ecQrCode": code, "businessType": "01301"}), t)
            .unwrap()["ecToken"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            s.resolve_credential(&json!({"mdtrt_cert_type": "01", "mdtrt_cert_no": tok}), t),
            Ok(2)
        );
        assert!(
            s.resolve_credential(
                &json!({"mdtrt_cert_type": "01", "mdtrt_cert_no": tok}),
                t + Duration::minutes(11)
            )
            .is_err()
        );
        let certno = s.accounts[1].person.certno.clone();
        assert_eq!(
            s.resolve_credential(
                &json!({"mdtrt_cert_type": "02", "mdtrt_cert_no": certno, "psn_name": "李四"}),
                t
            ),
            Ok(1)
        );
        assert!(
            s.resolve_credential(
                &json!({"mdtrt_cert_type": "02", "mdtrt_cert_no": certno, "psn_name": "张三"}),
                t
            )
            .is_err()
        );
        assert_eq!(
            s.resolve_credential(&json!({"mdtrt_cert_type": "03", "mdtrt_cert_no": "K42138100004", "card_sn": "421381D15600000500BF7C7A4"}), t),
            Ok(3)
        );
        assert!(
            s.resolve_credential(
                &json!({"mdtrt_cert_type": "03", "mdtrt_cert_no": "K42138100004", "card_sn": "x"}),
                t
            )
            .is_err()
        );
    }
}
