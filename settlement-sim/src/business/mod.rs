//! The simulated platform's business transactions (gateway.md §4.2, §8).
//!
//! Pharmacy 2101–2103, outpatient 2201–2208, inpatient 2301–2305, admission
//! and discharge 2401–2405, reversal 2601 and the settlement query 5203, on
//! real state: person → visit (`mdtrt_id`) → fee lines (`chrg_bchno`,
//! `feedetl_sn`) → settlement (`setl_id`, `medins_setl_id` = msgid) → cancel
//! (negative amounts, new `setl_id`) → reversal by msgid.
//!
//! Every handler validates everything before it changes anything, so a
//! refused request leaves the books as they were.
//!
//! - this module: dispatch by infno, and what every handler shares
//!   (people, insurance, open visits, `setlinfo`);
//! - `settle`: pre-settlements, settlements and their cancels;
//! - `visits`: registration, admission, discharge and their cancels;
//! - `fees`: fee uploads and fee cancels;
//! - `queries`: the visit, settlement and fee queries (5201, 5203, 5204);
//! - `reversal`: 2601, by msgid.

mod fees;
mod queries;
mod reversal;
mod settle;
mod visits;

use chrono::{DateTime, Local};
use serde_json::{Map, Value, json};
use settlement_client::catalogue;
use settlement_client::envelope::Request;
use settlement_client::money::Money;

use crate::ledger::{
    FeeLine, FeeState, RecordKind, RecordState, ReversalRecord, SettlementRecord, Split, Visit,
    VisitKind, VisitState, pooled_percent,
};
use crate::state::{Committed, Effect, State};

type Out = Result<Value, String>;

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

fn node<'a>(req: &'a Request, name: &str) -> &'a Value {
    req.input.get(name).unwrap_or(&Value::Null)
}

fn amount(v: &Value, k: &str) -> Result<Money, String> {
    Money::from_json(v.get(k).unwrap_or(&Value::Null)).map_err(|_| {
        format!(
            "FSI-金额格式错误: {k} = {}",
            v.get(k).unwrap_or(&Value::Null)
        )
    })
}

fn time(now: DateTime<Local>) -> String {
    now.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn base_infno(infno: &str) -> &str {
    catalogue::spec(infno).map_or(infno, |s| s.infno)
}

/// What goes into one `setlinfo`.
struct SetlOut<'a> {
    person: usize,
    mdtrt_id: &'a str,
    setl_id: Option<&'a str>,
    msgid: Option<&'a str>,
    insutype: &'a str,
    med_type: &'a str,
    cert_type: &'a str,
    split: &'a Split,
    balc: Money,
    setl_time: &'a str,
    kind: VisitKind,
}

impl State {
    /// Handles a business infno (`infno` is the catalogue's base spelling);
    /// `None` when the simulator does not serve it.
    pub(crate) fn business(
        &mut self,
        infno: &str,
        req: &Request,
        now: DateTime<Local>,
    ) -> Option<Out> {
        Some(match infno {
            "2101" => self.pharmacy(req, now, false),
            "2102" => self.pharmacy(req, now, true),
            "2103" => self.cancel(req, now, "2102"),
            "2201" => self.register(req, now),
            "2202" => self.register_cancel(req),
            "2203" => self.visit_upload(req),
            "2204" => self.upload_fees(req, VisitKind::Outpatient),
            "2205" => self.otp_fees_cancel(req),
            "2206" => self.otp_settle(req, now, false),
            "2207" => self.otp_settle(req, now, true),
            "2208" => self.cancel(req, now, "2207"),
            "2301" => self.upload_fees(req, VisitKind::Inpatient),
            "2302" => self.ipt_fees_cancel(req),
            "2303" => self.ipt_settle(req, now, false),
            "2304" => self.ipt_settle(req, now, true),
            "2305" => self.cancel(req, now, "2304"),
            "2401" => self.admit(req, now),
            "2402" => self.discharge(req),
            "2403" => self.admission_edit(req),
            "2404" => self.admission_cancel(req),
            "2405" => self.discharge_undo(req),
            "2601" => self.reverse(req, now),
            "5203" => self.query_settlement(req, now),
            "5201" => self.query_visits(req),
            "5204" => self.query_fees(req),
            _ => return None,
        })
    }

    fn new_id(&mut self, prefix: char) -> String {
        self.ids += 1;
        format!("{prefix}{:08}", self.ids)
    }

    /// The person named by `psn_no`; the credential, when given, must be theirs.
    fn person(&self, n: &Value, now: DateTime<Local>) -> Result<usize, String> {
        let psn_no = s(n, "psn_no");
        let idx = self
            .accounts
            .iter()
            .position(|a| a.person.psn_no == psn_no)
            .ok_or_else(|| format!("FSI-人员编号[{psn_no}]不存在"))?;
        if !s(n, "mdtrt_cert_type").is_empty() && self.resolve_credential(n, now)? != idx {
            return Err("FSI-就诊凭证与人员编号不符".into());
        }
        Ok(idx)
    }

    fn insutype(&self, idx: usize, n: &Value) -> Result<String, String> {
        let t = s(n, "insutype");
        self.accounts[idx]
            .person
            .insurances
            .iter()
            .find(|i| i.insutype == t)
            .map(|i| i.insutype.to_string())
            .ok_or_else(|| format!("FSI-该人员未参加险种[{t}]"))
    }

    /// An open visit of `kind` belonging to `psn_no`.
    fn open_visit(&self, mdtrt_id: &str, psn_no: &str, kind: VisitKind) -> Result<&Visit, String> {
        let v = self
            .visits
            .get(mdtrt_id)
            .filter(|v| v.kind == kind)
            .ok_or_else(|| format!("FSI-就诊信息[{mdtrt_id}]不存在"))?;
        if v.psn_no != psn_no {
            return Err("FSI-人员编号与就诊信息不符".into());
        }
        match &v.state {
            VisitState::Open => Ok(v),
            VisitState::Cancelled(_) => Err(format!("FSI-就诊信息[{mdtrt_id}]已撤销")),
            VisitState::Reversed(_) => Err(format!("FSI-就诊信息[{mdtrt_id}]不存在")),
        }
    }

    fn active_settlements(&self, mdtrt_id: &str) -> usize {
        self.records
            .iter()
            .filter(|r| {
                r.mdtrt_id == mdtrt_id
                    && r.kind == RecordKind::Settlement
                    && r.state == RecordState::Active
            })
            .count()
    }

    fn setlinfo(&self, o: &SetlOut<'_>, now: DateTime<Local>) -> Value {
        let p = &self.accounts[o.person].person;
        let ins = p.insurances.iter().find(|i| i.insutype == o.insutype);
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        put("mdtrt_id", o.mdtrt_id.into());
        if let Some(id) = o.setl_id {
            put("setl_id", id.into());
        }
        put("psn_no", p.psn_no.into());
        put("psn_name", p.name.into());
        put("psn_cert_type", "01".into());
        put("certno", p.certno.clone().into());
        put("gend", p.gend.into());
        put("naty", "01".into());
        put("brdy", p.brdy.into());
        put("age", age(p.brdy, now).into());
        put("insutype", o.insutype.into());
        put("psn_type", ins.map_or("", |i| i.psn_type).into());
        put("cvlserv_flag", "0".into());
        put("setl_time", o.setl_time.into());
        put("mdtrt_cert_type", o.cert_type.into());
        put("med_type", o.med_type.into());
        put("clr_optins", ins.map_or("", |i| i.insuplc_admdvs).into());
        put("clr_way", "1".into());
        put("clr_type", "11".into());
        if let Some(id) = o.msgid {
            put("medins_setl_id", id.into());
        }
        put(
            "pool_prop_selfpay",
            Money(100 - pooled_percent(o.kind, o.insutype)).to_json(),
        );
        o.split.write_setlinfo(&mut m);
        m.insert("balc".into(), o.balc.to_json());
        Value::Object(m)
    }
}

fn age(brdy: &str, now: DateTime<Local>) -> i64 {
    let y: i64 = now.format("%Y").to_string().parse().unwrap_or(2026);
    y - brdy.get(..4).and_then(|b| b.parse().ok()).unwrap_or(y)
}

/// Per-line policy split (`detlcutinfo[]` / `result[]`): all in scope.
fn line_result(l: &Value) -> Value {
    let amt =
        Money::from_json(l.get("det_item_fee_sumamt").unwrap_or(&Value::Null)).unwrap_or_default();
    let z = Money::ZERO.to_json();
    json!({
        "feedetl_sn": s(l, "feedetl_sn"),
        "det_item_fee_sumamt": amt.to_json(),
        "cnt": l.get("cnt").cloned().unwrap_or(Value::Null),
        "pric": l.get("pric").cloned().unwrap_or(Value::Null),
        "pric_uplmt_amt": z,
        "selfpay_prop": "0",
        "fulamt_ownpay_amt": z,
        "overlmt_amt": z,
        "preselfpay_amt": z,
        "inscp_scp_amt": amt.to_json(),
        "chrgitm_lv": "01",
        "med_chrgitm_type": "09",
        "bas_medn_flag": "0",
        "hi_nego_drug_flag": "0",
        "chld_medc_flag": "0",
        "list_sp_item_flag": "0",
        "drt_reim_flag": "0",
        "memo": "",
    })
}

/// `setldetail[]`: the pooled fund's and the account's payments.
fn setldetail(split: &Split, insutype: &str) -> Value {
    let (pool_code, pool_name) = match insutype {
        "390" => ("390100", "城乡居民基本医疗保险基金"),
        "340" => ("340100", "离休人员医疗保障基金"),
        _ => ("310100", "职工基本医疗保险统筹基金"),
    };
    let mut v = vec![json!({
        "fund_pay_type": pool_code,
        "fund_pay_type_name": pool_name,
        "inscp_scp_amt": split.inscp_scp_amt.to_json(),
        "crt_payb_lmt_amt": Money::ZERO.to_json(),
        "fund_payamt": split.hifp_pay.to_json(),
        "setl_proc_info": "",
    })];
    if split.acct_pay != Money::ZERO {
        v.push(json!({
            "fund_pay_type": "310200",
            "fund_pay_type_name": "职工基本医疗保险个人账户",
            "inscp_scp_amt": split.inscp_scp_amt.to_json(),
            "crt_payb_lmt_amt": Money::ZERO.to_json(),
            "fund_payamt": split.acct_pay.to_json(),
            "setl_proc_info": "",
        }));
    }
    Value::Array(v)
}

#[cfg(test)]
mod tests;
