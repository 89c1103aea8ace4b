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

use chrono::{DateTime, Local};
use serde_json::{Map, Value, json};
use settlement_client::catalogue;
use settlement_client::envelope::Request;
use settlement_client::money::Money;

/// The real Zhejiang refusal to reverse a settlement that was cancelled
/// (platform-sources.md §4). The simulator words its answers itself, never
/// with the client's constants, so a client that only knows its own
/// wording is caught by the tests.
/// What the ledger notes for a 2601 of an unknown msgid answered `infcode 0`
/// ([`crate::SimSettings::reverse_unknown_ok`]).
const UNKNOWN_REVERSED: &str = "unknown msgid: answered success, nothing reversed";

const REFUND_FLAG_SET_REFUSAL: &str = "FSI-调用业务基础子系统冲正失败:冲正的结算信息退费结算标志不为未退费，不能办理冲正交易[iptPsnSetlMgtBO_4412][outpatientSettleBO_40]";

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

    /// Pharmacy pre-settle (2101) and settle (2102): the sale is its own visit.
    fn pharmacy(&mut self, req: &Request, now: DateTime<Local>, commit: bool) -> Out {
        let info = node(req, "druginfo");
        let idx = self.person(info, now)?;
        let insutype = self.insutype(idx, info)?;
        let total = amount(info, "medfee_sumamt")?;
        let mut lines = Vec::new();
        let mut sum = Money::ZERO;
        for d in req
            .input
            .get("drugdetail")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let sn = s(d, "feedetl_sn");
            if lines.iter().any(|l: &FeeLine| l.feedetl_sn == sn) {
                return Err(format!("FSI-费用明细流水号[{sn}]重复"));
            }
            let a = amount(d, "det_item_fee_sumamt")?;
            sum = sum + a;
            lines.push(FeeLine {
                feedetl_sn: sn.to_string(),
                chrg_bchno: String::new(),
                amount: a,
                med_list_codg: s(d, "med_list_codg").to_string(),
                state: FeeState::Uploaded,
            });
        }
        if sum != total {
            return Err(format!("FSI-结算总金额[{total}]与费用明细合计[{sum}]不符"));
        }
        let med_type = match s(info, "med_type") {
            "" => "41",
            m => m,
        }
        .to_string();
        let use_acct = s(info, "acct_used_flag") == "1";
        let balance = self.accounts[idx].balance;
        let split = Split::compute(total, VisitKind::Pharmacy, &insutype, use_acct, balance);
        let cert_type = s(info, "mdtrt_cert_type").to_string();
        let detlcut: Vec<Value> = req
            .input
            .get("drugdetail")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(line_result)
            .collect();
        if !commit {
            let setl_time = time(now);
            let out = SetlOut {
                person: idx,
                mdtrt_id: "",
                setl_id: None,
                msgid: None,
                insutype: &insutype,
                med_type: &med_type,
                cert_type: &cert_type,
                split: &split,
                balc: balance - split.acct_pay,
                setl_time: &setl_time,
                kind: VisitKind::Pharmacy,
            };
            return Ok(json!({
                "setlinfo": self.setlinfo(&out, now),
                "setldetail": setldetail(&split, &insutype),
                "detlcutinfo": detlcut,
            }));
        }
        let mdtrt_id = self.new_id('3');
        let psn_no = self.accounts[idx].person.psn_no.to_string();
        self.visits.insert(
            mdtrt_id.clone(),
            Visit {
                mdtrt_id: mdtrt_id.clone(),
                psn_no,
                insutype: insutype.clone(),
                kind: VisitKind::Pharmacy,
                ipt_otp_no: String::new(),
                med_type: med_type.clone(),
                opened_by: req.msgid.clone(),
                state: VisitState::Open,
                discharged: false,
                fees: lines,
            },
        );
        let sns = self.visits[&mdtrt_id]
            .fees
            .iter()
            .map(|f| f.feedetl_sn.clone())
            .collect();
        let mut out = self.commit_settlement(
            req, idx, &mdtrt_id, &insutype, &med_type, &cert_type, split, sns, now,
        );
        if let Value::Object(m) = &mut out {
            m.insert("detlcutinfo".into(), Value::Array(detlcut));
        }
        Ok(out)
    }

    /// Commits a settlement of `fee_lines` of visit `mdtrt_id` (validated already).
    #[allow(clippy::too_many_arguments)]
    fn commit_settlement(
        &mut self,
        req: &Request,
        idx: usize,
        mdtrt_id: &str,
        insutype: &str,
        med_type: &str,
        cert_type: &str,
        split: Split,
        fee_lines: Vec<String>,
        now: DateTime<Local>,
    ) -> Value {
        let setl_id = self.new_id('4');
        let balc = self.accounts[idx].balance - split.acct_pay;
        self.accounts[idx].balance = balc;
        let kind = self
            .visits
            .get(mdtrt_id)
            .map_or(VisitKind::Pharmacy, |v| v.kind);
        if let Some(v) = self.visits.get_mut(mdtrt_id) {
            for f in v.fees.iter_mut() {
                if fee_lines.contains(&f.feedetl_sn) && f.state == FeeState::Uploaded {
                    f.state = FeeState::Settled(setl_id.clone());
                }
            }
        }
        let psn_no = self.accounts[idx].person.psn_no.to_string();
        let setl_time = time(now);
        self.records.push(SettlementRecord {
            setl_id: setl_id.clone(),
            mdtrt_id: mdtrt_id.to_string(),
            msgid: req.msgid.clone(),
            infno: req.infno.clone(),
            psn_no: psn_no.clone(),
            insutype: insutype.to_string(),
            med_type: med_type.to_string(),
            kind: RecordKind::Settlement,
            cancels: None,
            split,
            balc,
            state: RecordState::Active,
            cancelled_by: None,
            cancel_setl_id: None,
            reversed_by: None,
            fee_lines,
            setl_time: setl_time.clone(),
        });
        self.committed.insert(
            req.msgid.clone(),
            Committed {
                infno: req.infno.clone(),
                psn_no,
                effect: Effect::Record(self.records.len() - 1),
            },
        );
        let out = SetlOut {
            person: idx,
            mdtrt_id,
            setl_id: Some(&setl_id),
            msgid: Some(&req.msgid),
            insutype,
            med_type,
            cert_type,
            split: &split,
            balc,
            setl_time: &setl_time,
            kind,
        };
        json!({
            "setlinfo": self.setlinfo(&out, now),
            "setldetail": setldetail(&split, insutype),
        })
    }

    /// Outpatient registration (2201): opens a visit.
    fn register(&mut self, req: &Request, now: DateTime<Local>) -> Out {
        let d = node(req, "data");
        let idx = self.person(d, now)?;
        let insutype = self.insutype(idx, d)?;
        let psn_no = self.accounts[idx].person.psn_no.to_string();
        let otp = s(d, "ipt_otp_no").to_string();
        if self.visits.values().any(|v| {
            v.kind == VisitKind::Outpatient
                && v.state == VisitState::Open
                && v.ipt_otp_no == otp
                && v.psn_no == psn_no
        }) {
            return Err(format!("FSI-门诊号[{otp}]已挂号，不能重复挂号"));
        }
        let mdtrt_id = self.new_id('3');
        self.visits.insert(
            mdtrt_id.clone(),
            Visit {
                mdtrt_id: mdtrt_id.clone(),
                psn_no: psn_no.clone(),
                insutype,
                kind: VisitKind::Outpatient,
                ipt_otp_no: otp.clone(),
                med_type: match s(d, "med_type") {
                    "" => "11".into(),
                    m => m.into(),
                },
                opened_by: req.msgid.clone(),
                state: VisitState::Open,
                discharged: false,
                fees: Vec::new(),
            },
        );
        Ok(
            json!({"data": {"mdtrt_id": mdtrt_id, "psn_no": psn_no, "ipt_otp_no": otp, "exp_content": ""}}),
        )
    }

    /// Visit query (5201): the person's visits still open, optionally one
    /// `mdtrt_id` [guess: output node `mdtrtinfo`; the real 5201 also
    /// filters by `begntime`/`endtime`/`med_type`].
    fn query_visits(&self, req: &Request) -> Out {
        let d = node(req, "data");
        let psn_no = s(d, "psn_no");
        if !self.accounts.iter().any(|a| a.person.psn_no == psn_no) {
            return Err(format!("FSI-人员编号[{psn_no}]不存在"));
        }
        let want = s(d, "mdtrt_id");
        let mut list: Vec<&Visit> = self
            .visits
            .values()
            .filter(|v| v.psn_no == psn_no && v.state == VisitState::Open)
            .filter(|v| want.is_empty() || v.mdtrt_id == want)
            .collect();
        list.sort_by(|a, b| a.mdtrt_id.cmp(&b.mdtrt_id));
        let rows: Vec<Value> = list
            .into_iter()
            .map(|v| {
                json!({
                    "mdtrt_id": v.mdtrt_id,
                    "psn_no": v.psn_no,
                    "ipt_otp_no": v.ipt_otp_no,
                    "med_type": v.med_type,
                    "insutype": v.insutype,
                })
            })
            .collect();
        Ok(json!({ "mdtrtinfo": rows }))
    }

    /// Fee detail query (5204): the lines of a visit that are not cancelled
    /// [guess: output node `feedetail`, field `fee_stas`].
    fn query_fees(&self, req: &Request) -> Out {
        let d = node(req, "data");
        let id = s(d, "mdtrt_id");
        let v = self
            .visits
            .get(id)
            .filter(|v| v.psn_no == s(d, "psn_no") && v.state == VisitState::Open)
            .ok_or_else(|| format!("FSI-就诊信息[{id}]不存在"))?;
        let rows: Vec<Value> = v
            .fees
            .iter()
            .filter(|f| f.state != FeeState::Cancelled)
            .map(|f| {
                json!({
                    "feedetl_sn": f.feedetl_sn,
                    "mdtrt_id": v.mdtrt_id,
                    "chrg_bchno": f.chrg_bchno,
                    "det_item_fee_sumamt": f.amount.to_json(),
                    "med_list_codg": f.med_list_codg,
                    "fee_stas": if matches!(f.state, FeeState::Settled(_)) { "1" } else { "0" },
                })
            })
            .collect();
        Ok(json!({ "feedetail": rows }))
    }

    /// Registration cancel (2202).
    fn register_cancel(&mut self, req: &Request) -> Out {
        let d = node(req, "data");
        let id = s(d, "mdtrt_id");
        let v = self.open_visit(id, s(d, "psn_no"), VisitKind::Outpatient)?;
        if v.ipt_otp_no != s(d, "ipt_otp_no") {
            return Err("FSI-门诊号与就诊信息不符".into());
        }
        if self.active_settlements(id) > 0 {
            return Err("FSI-该就诊存在有效结算信息，请先撤销结算".into());
        }
        let v = self.visits.get_mut(id).ok_or("FSI-就诊信息不存在")?;
        v.state = VisitState::Cancelled(req.msgid.clone());
        for f in v.fees.iter_mut() {
            f.state = FeeState::Cancelled;
        }
        Ok(json!({}))
    }

    /// Visit information upload (2203).
    fn visit_upload(&mut self, req: &Request) -> Out {
        let m = node(req, "mdtrtinfo");
        let id = s(m, "mdtrt_id");
        self.open_visit(id, s(m, "psn_no"), VisitKind::Outpatient)?;
        let med_type = s(m, "med_type").to_string();
        if let Some(v) = self.visits.get_mut(id) {
            v.med_type = med_type;
        }
        Ok(json!({}))
    }

    /// Fee upload (2204 outpatient, 2301 inpatient).
    fn upload_fees(&mut self, req: &Request, kind: VisitKind) -> Out {
        let list: Vec<Value> = req
            .input
            .get("feedetail")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut new: Vec<(String, FeeLine)> = Vec::new();
        for (i, l) in list.iter().enumerate() {
            let id = s(l, "mdtrt_id");
            let v = self.open_visit(id, s(l, "psn_no"), kind)?;
            if kind == VisitKind::Inpatient && v.discharged {
                return Err("FSI-该患者已出院，不能上传费用明细".into());
            }
            let sn = s(l, "feedetl_sn");
            let dup_old = v
                .fees
                .iter()
                .any(|f| f.feedetl_sn == sn && f.state != FeeState::Cancelled);
            let dup_new = new.iter().any(|(m, f)| m == id && f.feedetl_sn == sn);
            if dup_old || dup_new {
                return Err(format!("FSI-费用明细流水号[{sn}]重复"));
            }
            let bch = s(l, "chrg_bchno");
            if kind == VisitKind::Outpatient && bch.is_empty() {
                return Err(format!(
                    "FSI-入参校验失败: input.feedetail[{i}].chrg_bchno不能为空"
                ));
            }
            new.push((
                id.to_string(),
                FeeLine {
                    feedetl_sn: sn.to_string(),
                    chrg_bchno: bch.to_string(),
                    amount: amount(l, "det_item_fee_sumamt")?,
                    med_list_codg: s(l, "med_list_codg").to_string(),
                    state: FeeState::Uploaded,
                },
            ));
        }
        for (id, f) in new {
            if let Some(v) = self.visits.get_mut(&id) {
                v.fees.push(f);
            }
        }
        Ok(json!({"result": list.iter().map(line_result).collect::<Vec<_>>()}))
    }

    /// Outpatient fee cancel (2205): one batch, or `0000` for every unsettled line.
    fn otp_fees_cancel(&mut self, req: &Request) -> Out {
        self.fees_cancel(
            req,
            VisitKind::Outpatient,
            "chrg_bchno",
            "收费批次",
            |f| &f.chrg_bchno,
        )
    }

    /// Inpatient fee cancel (2302): one line, or all unsettled lines when
    /// `feedetl_sn` is empty or `0000`.
    fn ipt_fees_cancel(&mut self, req: &Request) -> Out {
        self.fees_cancel(
            req,
            VisitKind::Inpatient,
            "feedetl_sn",
            "费用明细",
            |f| &f.feedetl_sn,
        )
    }

    /// Cancels the unsettled fee lines of a visit whose `key` equals the
    /// input's `field` (empty or `0000`: every unsettled line); a settled
    /// match is refused.
    fn fees_cancel(
        &mut self,
        req: &Request,
        kind: VisitKind,
        field: &str,
        label: &str,
        key: fn(&FeeLine) -> &String,
    ) -> Out {
        let d = node(req, "data");
        let id = s(d, "mdtrt_id");
        let want = s(d, field);
        let all = want.is_empty() || want == "0000";
        let v = self.open_visit(id, s(d, "psn_no"), kind)?;
        if !all
            && v.fees
                .iter()
                .any(|f| key(f) == want && matches!(f.state, FeeState::Settled(_)))
        {
            return Err(format!("FSI-{label}[{want}]已结算，请先撤销结算"));
        }
        let hit = |f: &FeeLine| f.state == FeeState::Uploaded && (all || key(f) == want);
        if !v.fees.iter().any(hit) {
            return Err("FSI-未找到可撤销的费用明细".into());
        }
        if let Some(v) = self.visits.get_mut(id) {
            for f in v.fees.iter_mut().filter(|f| hit(f)) {
                f.state = FeeState::Cancelled;
            }
        }
        Ok(json!({}))
    }

    /// Validates a visit settlement: the person, the insurance, the lines
    /// (`batch`: one charge batch, or every unsettled line) and the total.
    #[allow(clippy::type_complexity)]
    fn settle_check(
        &self,
        d: &Value,
        kind: VisitKind,
        batch: Option<&str>,
        now: DateTime<Local>,
    ) -> Result<(usize, String, String, Split, Vec<String>), String> {
        let idx = self.person(d, now)?;
        let insutype = self.insutype(idx, d)?;
        let id = s(d, "mdtrt_id");
        let v = self.open_visit(id, s(d, "psn_no"), kind)?;
        if v.insutype != insutype {
            return Err("FSI-险种与就诊登记不符".into());
        }
        let lines: Vec<&FeeLine> = v
            .fees
            .iter()
            .filter(|f| f.state == FeeState::Uploaded && batch.is_none_or(|b| f.chrg_bchno == b))
            .collect();
        if lines.is_empty() {
            return Err(match batch {
                Some(b)
                    if v.fees
                        .iter()
                        .any(|f| f.chrg_bchno == b && matches!(f.state, FeeState::Settled(_))) =>
                {
                    format!("FSI-收费批次[{b}]已结算")
                }
                Some(b) => format!("FSI-收费批次[{b}]没有待结算的费用明细"),
                None => "FSI-没有待结算的费用明细".into(),
            });
        }
        let total = amount(d, "medfee_sumamt")?;
        let sum = lines.iter().fold(Money::ZERO, |a, f| a + f.amount);
        if sum != total {
            return Err(format!("FSI-结算总金额[{total}]与费用明细合计[{sum}]不符"));
        }
        let med_type = match s(d, "med_type") {
            "" => v.med_type.clone(),
            m => m.to_string(),
        };
        let split = Split::compute(
            total,
            kind,
            &insutype,
            s(d, "acct_used_flag") == "1",
            self.accounts[idx].balance,
        );
        let sns = lines.iter().map(|f| f.feedetl_sn.clone()).collect();
        Ok((idx, insutype, med_type, split, sns))
    }

    #[allow(clippy::too_many_arguments)]
    fn presettle_out(
        &self,
        d: &Value,
        idx: usize,
        insutype: &str,
        med_type: &str,
        split: &Split,
        kind: VisitKind,
        now: DateTime<Local>,
    ) -> Value {
        let setl_time = time(now);
        let out = SetlOut {
            person: idx,
            mdtrt_id: s(d, "mdtrt_id"),
            setl_id: None,
            msgid: None,
            insutype,
            med_type,
            cert_type: s(d, "mdtrt_cert_type"),
            split,
            balc: self.accounts[idx].balance - split.acct_pay,
            setl_time: &setl_time,
            kind,
        };
        json!({"setlinfo": self.setlinfo(&out, now), "setldetail": setldetail(split, insutype)})
    }

    /// Outpatient pre-settle (2206) and settle (2207) of one charge batch.
    fn otp_settle(&mut self, req: &Request, now: DateTime<Local>, commit: bool) -> Out {
        let d = node(req, "data");
        let batch = s(d, "chrg_bchno");
        let (idx, insutype, med_type, split, sns) =
            self.settle_check(d, VisitKind::Outpatient, Some(batch), now)?;
        if !commit {
            return Ok(self.presettle_out(
                d,
                idx,
                &insutype,
                &med_type,
                &split,
                VisitKind::Outpatient,
                now,
            ));
        }
        Ok(self.commit_settlement(
            req,
            idx,
            s(d, "mdtrt_id"),
            &insutype,
            &med_type,
            s(d, "mdtrt_cert_type"),
            split,
            sns,
            now,
        ))
    }

    /// Inpatient pre-settle (2303) and settle (2304) of every unsettled line;
    /// settling needs a discharge (2402) unless `mid_setl_flag` is `1`.
    fn ipt_settle(&mut self, req: &Request, now: DateTime<Local>, commit: bool) -> Out {
        let d = node(req, "data");
        let (idx, insutype, med_type, split, sns) =
            self.settle_check(d, VisitKind::Inpatient, None, now)?;
        if !commit {
            return Ok(self.presettle_out(
                d,
                idx,
                &insutype,
                &med_type,
                &split,
                VisitKind::Inpatient,
                now,
            ));
        }
        let discharged = self
            .visits
            .get(s(d, "mdtrt_id"))
            .is_some_and(|v| v.discharged);
        if !discharged && s(d, "mid_setl_flag") != "1" {
            return Err("FSI-该患者未办理出院，不能出院结算(中途结算请传mid_setl_flag=1)".into());
        }
        Ok(self.commit_settlement(
            req,
            idx,
            s(d, "mdtrt_id"),
            &insutype,
            &med_type,
            s(d, "mdtrt_cert_type"),
            split,
            sns,
            now,
        ))
    }

    /// Settlement cancel (2103, 2208, 2305) of a settlement made by `of`:
    /// a new record with negative amounts and its own `setl_id`; the account
    /// gets its payment back; the fee lines are free again (pharmacy: void).
    fn cancel(&mut self, req: &Request, now: DateTime<Local>, of: &str) -> Out {
        let d = node(req, "data");
        let setl_id = s(d, "setl_id");
        let i = self
            .records
            .iter()
            .position(|r| r.setl_id == setl_id && r.kind == RecordKind::Settlement)
            .ok_or_else(|| format!("FSI-结算信息[{setl_id}]不存在"))?;
        let r = &self.records[i];
        if base_infno(&r.infno) != of {
            return Err(format!(
                "FSI-结算信息[{setl_id}]不是{of}交易的结算，不能用{}撤销",
                req.infno
            ));
        }
        if r.mdtrt_id != s(d, "mdtrt_id") {
            return Err("FSI-就诊ID与结算信息不符".into());
        }
        if r.psn_no != s(d, "psn_no") {
            return Err("FSI-人员编号与结算信息不符".into());
        }
        match r.state {
            RecordState::Active => {}
            RecordState::Cancelled => {
                return Err(format!("FSI-结算信息[{setl_id}]已撤销，不能重复撤销"));
            }
            RecordState::Reversed => return Err(format!("FSI-结算信息[{setl_id}]不存在")),
        }
        let idx = self
            .accounts
            .iter()
            .position(|a| a.person.psn_no == r.psn_no)
            .ok_or("FSI-人员不存在")?;
        let orig = r.clone();
        let new_setl = self.new_id('4');
        let balc = self.accounts[idx].balance + orig.split.acct_pay;
        self.accounts[idx].balance = balc;
        let split = orig.split.negated();
        let setl_time = time(now);
        self.records.push(SettlementRecord {
            setl_id: new_setl.clone(),
            mdtrt_id: orig.mdtrt_id.clone(),
            msgid: req.msgid.clone(),
            infno: req.infno.clone(),
            psn_no: orig.psn_no.clone(),
            insutype: orig.insutype.clone(),
            med_type: orig.med_type.clone(),
            kind: RecordKind::Cancel,
            cancels: Some(orig.setl_id.clone()),
            split,
            balc,
            state: RecordState::Active,
            cancelled_by: None,
            cancel_setl_id: None,
            reversed_by: None,
            fee_lines: orig.fee_lines.clone(),
            setl_time: setl_time.clone(),
        });
        let o = &mut self.records[i];
        o.state = RecordState::Cancelled;
        o.cancelled_by = Some(req.msgid.clone());
        o.cancel_setl_id = Some(new_setl.clone());
        let kind = self.free_lines(&orig.mdtrt_id, &orig.setl_id);
        self.committed.insert(
            req.msgid.clone(),
            Committed {
                infno: req.infno.clone(),
                psn_no: orig.psn_no.clone(),
                effect: Effect::Record(self.records.len() - 1),
            },
        );
        let out = SetlOut {
            person: idx,
            mdtrt_id: &orig.mdtrt_id,
            setl_id: Some(&new_setl),
            msgid: Some(&req.msgid),
            insutype: &orig.insutype,
            med_type: &orig.med_type,
            cert_type: "",
            split: &split,
            balc,
            setl_time: &setl_time,
            kind,
        };
        Ok(json!({
            "setlinfo": self.setlinfo(&out, now),
            "setldetail": setldetail(&split, &orig.insutype),
        }))
    }

    /// Frees the fee lines settled by `setl_id` (a pharmacy sale's lines are
    /// void instead); returns the visit's kind.
    fn free_lines(&mut self, mdtrt_id: &str, setl_id: &str) -> VisitKind {
        let Some(v) = self.visits.get_mut(mdtrt_id) else {
            return VisitKind::Pharmacy;
        };
        let to = if v.kind == VisitKind::Pharmacy {
            FeeState::Cancelled
        } else {
            FeeState::Uploaded
        };
        for f in v.fees.iter_mut() {
            if f.state == FeeState::Settled(setl_id.to_string()) {
                f.state = to.clone();
            }
        }
        v.kind
    }

    /// Admission (2401): opens an inpatient visit; reversible by 2601.
    fn admit(&mut self, req: &Request, now: DateTime<Local>) -> Out {
        let m = node(req, "mdtrtinfo");
        let idx = self.person(m, now)?;
        let insutype = self.insutype(idx, m)?;
        let psn_no = self.accounts[idx].person.psn_no.to_string();
        let busy = self.visits.values().any(|v| {
            v.kind == VisitKind::Inpatient
                && v.state == VisitState::Open
                && v.psn_no == psn_no
                && self.active_settlements(&v.mdtrt_id) == 0
        });
        if busy {
            return Err("FSI-该人员存在未结算的住院登记，不能重复办理入院".into());
        }
        let mdtrt_id = self.new_id('3');
        let ipt_no = s(m, "ipt_no").to_string();
        self.visits.insert(
            mdtrt_id.clone(),
            Visit {
                mdtrt_id: mdtrt_id.clone(),
                psn_no: psn_no.clone(),
                insutype,
                kind: VisitKind::Inpatient,
                ipt_otp_no: ipt_no.clone(),
                med_type: match s(m, "med_type") {
                    "" => "21".into(),
                    t => t.into(),
                },
                opened_by: req.msgid.clone(),
                state: VisitState::Open,
                discharged: false,
                fees: Vec::new(),
            },
        );
        self.committed.insert(
            req.msgid.clone(),
            Committed {
                infno: req.infno.clone(),
                psn_no: psn_no.clone(),
                effect: Effect::Admission(mdtrt_id.clone()),
            },
        );
        Ok(json!({"result": {"mdtrt_id": mdtrt_id, "psn_no": psn_no, "ipt_no": ipt_no}}))
    }

    /// Discharge (2402).
    fn discharge(&mut self, req: &Request) -> Out {
        let d = node(req, "dscginfo");
        let id = s(d, "mdtrt_id");
        let v = self.open_visit(id, s(d, "psn_no"), VisitKind::Inpatient)?;
        if v.discharged {
            return Err("FSI-该患者已办理出院".into());
        }
        if v.insutype != s(d, "insutype") {
            return Err("FSI-险种与入院登记不符".into());
        }
        if let Some(v) = self.visits.get_mut(id) {
            v.discharged = true;
        }
        Ok(json!({}))
    }

    /// Admission edit (2403; node `adminfo` [guess]): changes the medical
    /// type, the hospital's number or the insurance of an open stay.
    fn admission_edit(&mut self, req: &Request) -> Out {
        let d = node(req, "adminfo");
        let id = s(d, "mdtrt_id");
        let v = self.open_visit(id, s(d, "psn_no"), VisitKind::Inpatient)?;
        if self.active_settlements(id) > 0 {
            return Err("FSI-已办理结算，不能变更入院信息".into());
        }
        let insutype = match s(d, "insutype") {
            "" => v.insutype.clone(),
            t => {
                let idx = self
                    .accounts
                    .iter()
                    .position(|a| a.person.psn_no == v.psn_no)
                    .ok_or("FSI-人员不存在")?;
                self.insutype(idx, d)?;
                t.to_string()
            }
        };
        let (med_type, ipt_no) = (s(d, "med_type").to_string(), s(d, "ipt_no").to_string());
        if let Some(v) = self.visits.get_mut(id) {
            v.insutype = insutype;
            if !med_type.is_empty() {
                v.med_type = med_type;
            }
            if !ipt_no.is_empty() {
                v.ipt_otp_no = ipt_no;
            }
        }
        Ok(json!({}))
    }

    /// Admission cancel (2404): only an empty, undischarged, unsettled stay.
    fn admission_cancel(&mut self, req: &Request) -> Out {
        let d = node(req, "data");
        let id = s(d, "mdtrt_id");
        let v = self.open_visit(id, s(d, "psn_no"), VisitKind::Inpatient)?;
        if v.discharged {
            return Err("FSI-该患者已办理出院，请先撤销出院(2405)".into());
        }
        if self.active_settlements(id) > 0 {
            return Err("FSI-该就诊存在有效结算信息，请先撤销结算".into());
        }
        if v.fees.iter().any(|f| f.state == FeeState::Uploaded) {
            return Err("FSI-存在未撤销的费用明细，请先撤销费用明细(2302)".into());
        }
        if let Some(v) = self.visits.get_mut(id) {
            v.state = VisitState::Cancelled(req.msgid.clone());
        }
        Ok(json!({}))
    }

    /// Discharge undo (2405): only before the discharge settlement.
    fn discharge_undo(&mut self, req: &Request) -> Out {
        let d = node(req, "data");
        let id = s(d, "mdtrt_id");
        let v = self.open_visit(id, s(d, "psn_no"), VisitKind::Inpatient)?;
        if !v.discharged {
            return Err("FSI-该患者未办理出院".into());
        }
        if self.active_settlements(id) > 0 {
            return Err("FSI-已办理出院结算，请先撤销结算".into());
        }
        if let Some(v) = self.visits.get_mut(id) {
            v.discharged = false;
        }
        Ok(json!({}))
    }

    /// Settlement query (5203): a settlement or cancel record still in effect
    /// or cancelled (a reversed one does not exist any more).
    fn query_settlement(&self, req: &Request, now: DateTime<Local>) -> Out {
        let d = node(req, "data");
        let r = self
            .records
            .iter()
            .find(|r| {
                r.setl_id == s(d, "setl_id")
                    && r.psn_no == s(d, "psn_no")
                    && r.mdtrt_id == s(d, "mdtrt_id")
                    && r.state != RecordState::Reversed
            })
            .ok_or("FSI-未查询到结算信息")?;
        let idx = self
            .accounts
            .iter()
            .position(|a| a.person.psn_no == r.psn_no)
            .ok_or("FSI-人员不存在")?;
        let kind = self
            .visits
            .get(&r.mdtrt_id)
            .map_or(VisitKind::Pharmacy, |v| v.kind);
        let out = SetlOut {
            person: idx,
            mdtrt_id: &r.mdtrt_id,
            setl_id: Some(&r.setl_id),
            msgid: Some(&r.msgid),
            insutype: &r.insutype,
            med_type: &r.med_type,
            cert_type: "",
            split: &r.split,
            balc: r.balc,
            setl_time: &r.setl_time,
            kind,
        };
        let mut info = self.setlinfo(&out, now);
        if let Value::Object(m) = &mut info {
            let refunded = r.state == RecordState::Cancelled || r.kind == RecordKind::Cancel;
            m.insert(
                "refd_setl_flag".into(),
                if refunded { "1" } else { "0" }.into(),
            );
            if let Some(o) = &r.cancels {
                m.insert("init_setl_id".into(), o.clone().into());
            }
        }
        Ok(json!({"setlinfo": info, "setldetail": setldetail(&r.split, &r.insutype)}))
    }

    /// Reversal (2601): undoes exactly the request `omsgid`.
    fn reverse(&mut self, req: &Request, now: DateTime<Local>) -> Out {
        let d = node(req, "data");
        let omsgid = s(d, "omsgid").to_string();
        let oinfno = s(d, "oinfno").to_string();
        let psn_no = s(d, "psn_no").to_string();
        let result = self.reverse_inner(&req.msgid, &omsgid, &oinfno, &psn_no);
        self.reversals.push(ReversalRecord {
            msgid: req.msgid.clone(),
            omsgid: omsgid.clone(),
            oinfno: oinfno.clone(),
            psn_no,
            ok: result.is_ok(),
            detail: match &result {
                Ok(d) | Err(d) => d.clone(),
            },
        });
        result.map(|detail| {
            if detail != UNKNOWN_REVERSED {
                self.reversed.insert(omsgid.clone());
            }
            json!({"data": {"omsgid": omsgid, "oinfno": oinfno, "rvs_time": time(now)}})
        })
    }

    fn reverse_inner(
        &mut self,
        msgid: &str,
        omsgid: &str,
        oinfno: &str,
        psn_no: &str,
    ) -> Result<String, String> {
        if self.reversed.contains(omsgid) {
            return Err(format!("FSI-冲正失败:原交易[{omsgid}]已冲正，不能重复冲正"));
        }
        let Some(c) = self.committed.get(omsgid).cloned() else {
            if let Some(infno) = self.msgids.get(omsgid)
                && catalogue::spec(infno).is_some_and(|s| !s.reversible)
            {
                return Err(format!("FSI-冲正失败:交易[{infno}]不支持冲正"));
            }
            if self.settings.reverse_unknown_ok {
                // A lax platform: "reversed" without looking, and nothing
                // recorded, so a late original still lands afterwards.
                return Ok(UNKNOWN_REVERSED.into());
            }
            return Err(format!("FSI-冲正失败:原交易不存在[omsgid={omsgid}]"));
        };
        if base_infno(oinfno) != base_infno(&c.infno) {
            return Err(format!(
                "FSI-冲正失败:原交易编号[{oinfno}]与原报文[{}]不符",
                c.infno
            ));
        }
        if psn_no != c.psn_no {
            return Err("FSI-冲正失败:人员编号与原交易不符".into());
        }
        match c.effect {
            Effect::Admission(mdtrt_id) => {
                let v = self
                    .visits
                    .get(&mdtrt_id)
                    .ok_or("FSI-冲正失败:就诊信息不存在")?;
                if let VisitState::Cancelled(_) = v.state {
                    return Err("FSI-冲正失败:该入院登记已撤销，不能办理冲正交易".into());
                }
                if self.active_settlements(&mdtrt_id) > 0 {
                    return Err("FSI-冲正失败:该就诊存在有效结算信息，不能办理冲正交易".into());
                }
                let v = self.visits.get_mut(&mdtrt_id).ok_or("FSI-冲正失败")?;
                v.state = VisitState::Reversed(msgid.to_string());
                for f in v.fees.iter_mut() {
                    f.state = FeeState::Cancelled;
                }
                Ok(format!("admission {mdtrt_id} undone"))
            }
            Effect::Record(i) => {
                let r = self.records[i].clone();
                let idx = self
                    .accounts
                    .iter()
                    .position(|a| a.person.psn_no == r.psn_no)
                    .ok_or("FSI-冲正失败:人员不存在")?;
                match (r.kind, r.state) {
                    (RecordKind::Settlement, RecordState::Cancelled) => {
                        Err(REFUND_FLAG_SET_REFUSAL.to_string())
                    }
                    (RecordKind::Settlement, RecordState::Active) => {
                        self.accounts[idx].balance = self.accounts[idx].balance + r.split.acct_pay;
                        let rec = &mut self.records[i];
                        rec.state = RecordState::Reversed;
                        rec.reversed_by = Some(msgid.to_string());
                        let kind = self.free_lines(&r.mdtrt_id, &r.setl_id);
                        if kind == VisitKind::Pharmacy
                            && let Some(v) = self.visits.get_mut(&r.mdtrt_id)
                        {
                            v.state = VisitState::Reversed(msgid.to_string());
                        }
                        Ok(format!("settlement {} reversed", r.setl_id))
                    }
                    (RecordKind::Cancel, RecordState::Active) => {
                        let orig_id = r.cancels.clone().unwrap_or_default();
                        let oi = self
                            .records
                            .iter()
                            .position(|x| x.setl_id == orig_id)
                            .ok_or("FSI-冲正失败:原结算信息不存在")?;
                        let orig = self.records[oi].clone();
                        let v = self.visits.get(&orig.mdtrt_id);
                        let lines_free = v.is_none_or(|v| {
                            let want = if v.kind == VisitKind::Pharmacy {
                                FeeState::Cancelled
                            } else {
                                FeeState::Uploaded
                            };
                            v.fees
                                .iter()
                                .filter(|f| orig.fee_lines.contains(&f.feedetl_sn))
                                .all(|f| f.state == want)
                        });
                        if !lines_free {
                            return Err(
                                "FSI-冲正失败:原结算的费用明细已变更，不能办理冲正交易".into()
                            );
                        }
                        if self.accounts[idx].balance < orig.split.acct_pay {
                            return Err("FSI-冲正失败:个人账户余额不足，不能办理冲正交易".into());
                        }
                        self.accounts[idx].balance =
                            self.accounts[idx].balance - orig.split.acct_pay;
                        let c = &mut self.records[i];
                        c.state = RecordState::Reversed;
                        c.reversed_by = Some(msgid.to_string());
                        let o = &mut self.records[oi];
                        o.state = RecordState::Active;
                        o.cancelled_by = None;
                        o.cancel_setl_id = None;
                        if let Some(v) = self.visits.get_mut(&orig.mdtrt_id) {
                            for f in v.fees.iter_mut() {
                                if orig.fee_lines.contains(&f.feedetl_sn)
                                    && f.state != FeeState::Settled(orig.setl_id.clone())
                                {
                                    f.state = FeeState::Settled(orig.setl_id.clone());
                                }
                            }
                        }
                        Ok(format!(
                            "cancel {} undone, {} in effect again",
                            r.setl_id, orig.setl_id
                        ))
                    }
                    _ => Err(format!("FSI-冲正失败:原交易不存在[omsgid={omsgid}]")),
                }
            }
        }
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
mod tests_support {
    use super::*;
    use crate::SimSettings;
    use settlement_client::envelope;

    /// A platform with one sign-in, and a way to send it requests.
    pub(super) struct T {
        pub(super) st: State,
        pub(super) sign_no: String,
        seq: u32,
        now: DateTime<Local>,
    }

    impl T {
        pub(super) fn new() -> T {
            let now = Local::now();
            let mut t = T {
                st: State::new(SimSettings::default()),
                sign_no: String::new(),
                seq: 0,
                now,
            };
            let r = t.send(
                "9001",
                json!({"signIn": {"opter_no": "1", "mac": "m", "ip": "i"}}),
            );
            t.sign_no = r.output.unwrap()["signinoutb"]["sign_no"]
                .as_str()
                .unwrap()
                .to_string();
            t
        }

        pub(super) fn msgid(&mut self) -> String {
            self.seq += 1;
            format!(
                "H42138100001{}{:04}",
                self.now.format("%Y%m%d%H%M%S"),
                self.seq
            )
        }

        pub(super) fn send_as(
            &mut self,
            msgid: &str,
            infno: &str,
            input: Value,
        ) -> envelope::Response {
            let admdvs = envelope::input_names_psn_no(&input)
                .and_then(|p| self.st.accounts.iter().find(|a| a.person.psn_no == p))
                .map(|a| a.person.insurances[0].insuplc_admdvs.to_string())
                .unwrap_or_default();
            let req = Request {
                infno: infno.into(),
                msgid: msgid.into(),
                mdtrtarea_admvs: "421381".into(),
                insuplc_admdvs: admdvs,
                recer_sys_code: String::new(),
                dev_no: String::new(),
                dev_safe_info: String::new(),
                cainfo: String::new(),
                signtype: String::new(),
                infver: "V1.0".into(),
                opter_type: "1".into(),
                opter: "1".into(),
                opter_name: "x".into(),
                inf_time: String::new(),
                fixmedins_code: "H42138100001".into(),
                fixmedins_name: "h".into(),
                sign_no: self.sign_no.clone(),
                input,
            };
            if let Err(e) = self.st.check_envelope(&req) {
                return envelope::Response::failure(e);
            }
            self.st.handle(&req, self.now)
        }

        pub(super) fn send(&mut self, infno: &str, input: Value) -> envelope::Response {
            let m = self.msgid();
            self.send_as(&m, infno, input)
        }

        pub(super) fn ok(&mut self, infno: &str, input: Value) -> (String, Value) {
            let m = self.msgid();
            let r = self.send_as(&m, infno, input);
            assert_eq!(r.infcode, 0, "{infno}: {:?}", r.err_msg);
            (m, r.output.unwrap_or(Value::Null))
        }

        pub(super) fn err(&mut self, infno: &str, input: Value) -> String {
            let r = self.send(infno, input);
            assert_eq!(r.infcode, -1, "{infno} should fail: {:?}", r.output);
            assert!(r.output.is_none());
            r.err_msg.unwrap()
        }

        pub(super) fn balance(&self, psn: &str) -> Money {
            self.st.ledger().balance(psn).unwrap()
        }

        pub(super) fn check(&self) {
            self.st.ledger().check().unwrap();
        }
    }

    pub(super) const P0: &str = "42000000000000000001";

    pub(super) fn card(t: &T, i: usize) -> (String, String) {
        let p = &t.st.accounts[i].person;
        (p.certno.clone(), p.name.to_string())
    }

    pub(super) fn m(v: &Value, k: &str) -> Money {
        Money::from_json(&v["setlinfo"][k]).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::*;
    use super::*;
    use settlement_client::wording::{Meaning, meaning};

    #[test]
    fn outpatient_register_fees_settle_cancel_and_reverse() {
        let mut t = T::new();
        let (certno, name) = card(&t, 0);
        let cert = json!({"mdtrt_cert_type": "02", "mdtrt_cert_no": certno, "psn_name": name});
        let mut d = json!({"psn_no": P0, "insutype": "310", "begntime": "2026-11-23 09:00:00", "ipt_otp_no": "MZ001"});
        d.as_object_mut()
            .unwrap()
            .extend(cert.as_object().unwrap().clone());
        let (_, out) = t.ok("2201", json!({"data": d}));
        let mdtrt_id = out["data"]["mdtrt_id"].as_str().unwrap().to_string();
        t.ok(
            "2203",
            json!({"mdtrtinfo": {"mdtrt_id": mdtrt_id, "psn_no": P0, "med_type": "11"}, "diseinfo": []}),
        );
        let line = |sn: &str, b: &str, amt: &str| json!({"feedetl_sn": sn, "mdtrt_id": mdtrt_id, "psn_no": P0, "chrg_bchno": b, "det_item_fee_sumamt": amt.parse::<serde_json::Number>().unwrap(), "cnt": 1, "pric": 1});
        let (_, out) = t.ok("2204", json!({"feedetail": [line("1", "B1", "100.01"), line("2", "B1", "20.00"), line("3", "B2", "5.55")]}));
        assert_eq!(out["result"].as_array().unwrap().len(), 3);
        assert!(
            t.err("2204", json!({"feedetail": [line("1", "B3", "1.00")]}))
                .contains("重复")
        );
        let mut settle = json!({"psn_no": P0, "med_type": "11", "medfee_sumamt": "120.01", "psn_setlway": "01", "mdtrt_id": mdtrt_id, "chrg_bchno": "B1", "insutype": "310", "acct_used_flag": "1"});
        settle
            .as_object_mut()
            .unwrap()
            .extend(cert.as_object().unwrap().clone());
        let (_, pre) = t.ok("2206", json!({"data": settle}));
        assert!(pre["setlinfo"].get("setl_id").is_none());
        assert_eq!(t.balance(P0), Money(100_000), "pre-settle commits nothing");
        // A wrong total is refused and commits nothing.
        let mut wrong = settle.clone();
        wrong["medfee_sumamt"] = json!("120.00");
        assert!(t.err("2207", json!({"data": wrong})).contains("不符"));
        let (msg_settle, out) = t.ok("2207", json!({"data": settle}));
        let si = &out["setlinfo"];
        assert_eq!(si["medins_setl_id"], msg_settle.as_str());
        assert_eq!(si["medfee_sumamt"].to_string(), "120.01");
        assert_eq!(
            m(&out, "hifp_pay") + m(&out, "acct_pay") + m(&out, "psn_cash_pay"),
            Money(12_001)
        );
        assert_eq!(m(&out, "hifp_pay"), Money(8400));
        assert_eq!(m(&out, "acct_pay"), Money(3601));
        assert_eq!(m(&out, "balc"), Money(100_000 - 3601));
        assert_eq!(t.balance(P0), Money(100_000 - 3601));
        let setl_id = si["setl_id"].as_str().unwrap().to_string();
        assert!(t.err("2207", json!({"data": settle})).contains("已结算"));
        t.check();
        // 5203 sees it.
        let (_, q) = t.ok(
            "5203",
            json!({"data": {"psn_no": P0, "setl_id": setl_id, "mdtrt_id": mdtrt_id}}),
        );
        assert_eq!(q["setlinfo"]["refd_setl_flag"], "0");
        // Cancel: negative amounts, a new setl_id, the balance restored.
        let cancel = json!({"data": {"setl_id": setl_id, "mdtrt_id": mdtrt_id, "psn_no": P0}});
        let (msg_cancel, c) = t.ok("2208", cancel.clone());
        assert_ne!(c["setlinfo"]["setl_id"], setl_id.as_str());
        assert_eq!(c["setlinfo"]["medfee_sumamt"].to_string(), "-120.01");
        assert_eq!(m(&c, "acct_pay"), Money(-3601));
        assert_eq!(t.balance(P0), Money(100_000));
        assert!(t.err("2208", cancel.clone()).contains("已撤销"));
        t.check();
        // The cancelled settlement cannot be reversed: the real Zhejiang answer.
        let e = t.err(
            "2601",
            json!({"data": {"psn_no": P0, "omsgid": msg_settle, "oinfno": "2207"}}),
        );
        assert_eq!(meaning(&e), Some(Meaning::RefundFlagSet), "{e}");
        // Reversing the cancel puts the settlement back in effect.
        t.ok(
            "2601",
            json!({"data": {"psn_no": P0, "omsgid": msg_cancel, "oinfno": "2208"}}),
        );
        assert_eq!(t.balance(P0), Money(100_000 - 3601));
        let l = t.st.ledger();
        assert_eq!(l.settlement(&setl_id).unwrap().state, RecordState::Active);
        assert_eq!(
            l.by_msgid(&msg_cancel).unwrap().state,
            RecordState::Reversed
        );
        t.check();
        let e = t.err(
            "2601",
            json!({"data": {"psn_no": P0, "omsgid": msg_cancel, "oinfno": "2208"}}),
        );
        assert_eq!(meaning(&e), Some(Meaning::AlreadyReversed), "{e}");
        // Now the settlement itself can be reversed; the lines are free again.
        t.ok(
            "2601",
            json!({"data": {"psn_no": P0, "omsgid": msg_settle, "oinfno": "2207"}}),
        );
        assert_eq!(t.balance(P0), Money(100_000));
        t.check();
        // …and settled again under a new msgid; B2 stays separate.
        t.ok("2207", json!({"data": settle}));
        t.ok(
            "2205",
            json!({"data": {"mdtrt_id": mdtrt_id, "chrg_bchno": "B2", "psn_no": P0}}),
        );
        assert!(
            t.err(
                "2205",
                json!({"data": {"mdtrt_id": mdtrt_id, "chrg_bchno": "B1", "psn_no": P0}})
            )
            .contains("已结算")
        );
        assert!(
            t.err(
                "2202",
                json!({"data": {"mdtrt_id": mdtrt_id, "ipt_otp_no": "MZ001", "psn_no": P0}})
            )
            .contains("结算")
        );
        // A reversal of something that never arrived is harmless and says so.
        let never = t.msgid();
        let e = t.err(
            "2601",
            json!({"data": {"psn_no": P0, "omsgid": never, "oinfno": "2207"}}),
        );
        assert_eq!(meaning(&e), Some(Meaning::OriginalNotFound), "{e}");
        let l = t.st.ledger();
        assert_eq!(l.reversals.len(), 5);
        assert_eq!(l.reversals.iter().filter(|r| r.ok).count(), 2);
        t.check();
    }

    #[test]
    fn pharmacy_sale_reversed_and_cancel_paths() {
        let mut t = T::new();
        let (certno, _) = card(&t, 0);
        let sale = |sum: &str| {
            json!({
                "druginfo": {"psn_no": P0, "mdtrt_cert_type": "02", "mdtrt_cert_no": certno, "begntime": "2026-11-23 10:00:00", "medfee_sumamt": sum, "insutype": "310", "acct_used_flag": "1", "med_type": "41"},
                "drugdetail": [
                    {"feedetl_sn": "1", "med_list_codg": "XA01", "det_item_fee_sumamt": 12.34, "cnt": 2, "pric": 6.17},
                    {"feedetl_sn": "2", "med_list_codg": "XA02", "det_item_fee_sumamt": "7.66", "cnt": 1, "pric": 7.66}
                ]
            })
        };
        let (_, pre) = t.ok("2101", sale("20.00"));
        assert_eq!(pre["detlcutinfo"].as_array().unwrap().len(), 2);
        assert!(t.st.ledger().settlements.is_empty());
        assert!(t.err("2102", sale("20.01")).contains("不符"));
        let (m1, out) = t.ok("2102", sale("20.00"));
        assert_eq!(m(&out, "hifp_pay"), Money(1000));
        assert_eq!(m(&out, "acct_pay"), Money(1000));
        assert_eq!(t.balance(P0), Money(99_000));
        let setl_id = out["setlinfo"]["setl_id"].as_str().unwrap().to_string();
        let mdtrt_id = out["setlinfo"]["mdtrt_id"].as_str().unwrap().to_string();
        // Not reversible with the wrong oinfno or person.
        assert!(
            t.err(
                "2601",
                json!({"data": {"psn_no": P0, "omsgid": m1, "oinfno": "2207"}})
            )
            .contains("不符")
        );
        t.ok(
            "2601",
            json!({"data": {"psn_no": P0, "omsgid": m1, "oinfno": "2102"}}),
        );
        assert_eq!(t.balance(P0), Money(100_000));
        let l = t.st.ledger();
        let r = l.by_msgid(&m1).unwrap();
        assert_eq!(r.state, RecordState::Reversed);
        assert!(r.reversed_by.is_some());
        l.check().unwrap();
        // A reversed settlement does not exist any more.
        let cancel = json!({"data": {"setl_id": setl_id, "mdtrt_id": mdtrt_id, "psn_no": P0}});
        assert!(t.err("2103", cancel).contains("不存在"));
        // Sell again, cancel with 2103, reverse the 2103.
        let (_, out) = t.ok("2102", sale("20.00"));
        let setl_id = out["setlinfo"]["setl_id"].as_str().unwrap().to_string();
        let mdtrt_id = out["setlinfo"]["mdtrt_id"].as_str().unwrap().to_string();
        let cancel = json!({"data": {"setl_id": setl_id, "mdtrt_id": mdtrt_id, "psn_no": P0}});
        assert!(
            t.err("2208", cancel.clone()).contains("不是2207"),
            "2208 does not cancel a 2102"
        );
        let (mc, c) = t.ok("2103", cancel);
        assert_eq!(m(&c, "medfee_sumamt"), Money(-2000));
        assert_eq!(t.balance(P0), Money(100_000));
        t.ok(
            "2601",
            json!({"data": {"psn_no": P0, "omsgid": mc, "oinfno": "2103"}}),
        );
        assert_eq!(t.balance(P0), Money(99_000));
        t.check();
        // An account is used only up to its balance, and only with 310.
        let (_, out) = t.ok("2102", json!({
            "druginfo": {"psn_no": P0, "mdtrt_cert_type": "02", "mdtrt_cert_no": certno, "medfee_sumamt": 5000, "insutype": "310", "acct_used_flag": "1", "med_type": "41"},
            "drugdetail": [{"feedetl_sn": "1", "med_list_codg": "X", "det_item_fee_sumamt": "5000.00"}]
        }));
        assert_eq!(m(&out, "acct_pay"), Money(99_000).min(Money(250_000)));
        assert_eq!(t.balance(P0), Money::ZERO);
        assert_eq!(m(&out, "psn_cash_pay"), Money(250_000 - 99_000));
        t.check();
    }

    #[test]
    fn inpatient_admission_discharge_settle_and_admission_reversal() {
        let mut t = T::new();
        let p = "42000000000000000004";
        let (certno, _) = card(&t, 3);
        let adm = json!({"mdtrtinfo": {"psn_no": p, "insutype": "390", "begntime": "2026-11-20 08:00:00", "mdtrt_cert_type": "02", "mdtrt_cert_no": certno, "med_type": "21", "ipt_no": "ZY01"}, "diseinfo": []});
        let (m_adm, out) = t.ok("2401", adm.clone());
        let id = out["result"]["mdtrt_id"].as_str().unwrap().to_string();
        assert!(t.err("2401", adm.clone()).contains("重复"));
        let fee = json!({"feedetail": [
            {"feedetl_sn": "1", "mdtrt_id": id, "psn_no": p, "det_item_fee_sumamt": "300.00"},
            {"feedetl_sn": "2", "mdtrt_id": id, "psn_no": p, "det_item_fee_sumamt": "0.03"}
        ]});
        t.ok(
            "2403",
            json!({"adminfo": {"mdtrt_id": id, "psn_no": p, "med_type": "22"}}),
        );
        assert!(
            t.err(
                "2403",
                json!({"adminfo": {"mdtrt_id": id, "psn_no": p, "insutype": "340"}})
            )
            .contains("险种")
        );
        t.ok("2301", fee);
        t.ok(
            "2302",
            json!({"data": {"mdtrt_id": id, "psn_no": p, "feedetl_sn": "2"}}),
        );
        let settle = json!({"data": {"psn_no": p, "mdtrt_cert_type": "02", "mdtrt_cert_no": certno, "medfee_sumamt": "300.00", "psn_setlway": "01", "mdtrt_id": id, "insutype": "390", "acct_used_flag": "1"}});
        t.ok("2303", settle.clone());
        assert!(t.err("2304", settle.clone()).contains("出院"));
        assert!(
            t.err("2404", json!({"data": {"mdtrt_id": id, "psn_no": p}}))
                .contains("费用明细")
        );
        t.ok("2402", json!({"dscginfo": {"mdtrt_id": id, "psn_no": p, "insutype": "390", "endtime": "2026-11-23 09:00:00"}, "diseinfo": []}));
        t.ok("2405", json!({"data": {"mdtrt_id": id, "psn_no": p}}));
        t.ok("2402", json!({"dscginfo": {"mdtrt_id": id, "psn_no": p, "insutype": "390", "endtime": "2026-11-23 09:00:00"}, "diseinfo": []}));
        let (_, out) = t.ok("2304", settle.clone());
        assert_eq!(m(&out, "hifp_pay"), Money(21_000));
        assert_eq!(m(&out, "acct_pay"), Money::ZERO, "390 has no account");
        assert_eq!(m(&out, "psn_cash_pay"), Money(9_000));
        // Settled: the admission can no longer be reversed.
        assert!(
            t.err(
                "2601",
                json!({"data": {"psn_no": p, "omsgid": m_adm, "oinfno": "2401"}})
            )
            .contains("结算")
        );
        let setl_id = out["setlinfo"]["setl_id"].as_str().unwrap().to_string();
        t.ok(
            "2305",
            json!({"data": {"mdtrt_id": id, "setl_id": setl_id, "psn_no": p}}),
        );
        t.ok(
            "2601",
            json!({"data": {"psn_no": p, "omsgid": m_adm, "oinfno": "2401"}}),
        );
        let l = t.st.ledger();
        let v = l.visits.iter().find(|v| v.mdtrt_id == id).unwrap();
        assert_eq!(
            v.state,
            VisitState::Reversed(l.reversals.last().unwrap().msgid.clone())
        );
        l.check().unwrap();
        // A non-reversible transaction is refused as such.
        let (m_reg, _) = t.ok("2401", adm);
        let _ = m_reg;
        let (certno0, _) = card(&t, 0);
        let (m2201, _) = t.ok("2201", json!({"data": {"psn_no": P0, "insutype": "310", "begntime": "2026-11-23 09:00:00", "mdtrt_cert_type": "02", "mdtrt_cert_no": certno0, "ipt_otp_no": "MZ9"}}));
        assert!(
            t.err(
                "2601",
                json!({"data": {"psn_no": P0, "omsgid": m2201, "oinfno": "2201"}})
            )
            .contains("不支持冲正")
        );
    }

    #[test]
    fn envelope_and_required_fields() {
        let mut t = T::new();
        let e = t.err("2207", json!({"data": {"psn_no": P0}}));
        assert!(e.contains("input.data.mdtrt_cert_type"), "{e}");
        // insuplc_admdvs must match the person's.
        let m = t.msgid();
        let mut req: Request = serde_json::from_value(json!({
            "infno": "2201", "msgid": m, "mdtrtarea_admvs": "421381", "insuplc_admdvs": "110105",
            "fixmedins_code": "H42138100001", "sign_no": t.sign_no, "input": {"data": {"psn_no": P0}}
        })).unwrap();
        assert!(t.st.check_envelope(&req).unwrap_err().contains("参保地"));
        req.insuplc_admdvs = "421381".into();
        assert!(t.st.check_envelope(&req).is_ok());
        assert!(t.st.check_envelope(&req).unwrap_err().contains("重复"));
    }
}

#[cfg(test)]
mod conservation {
    use super::tests_support::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// Person, amount in fen, use the account.
        Sale(usize, i64, bool),
        /// Cancel the k-th settlement made so far.
        Cancel(usize),
        /// Reverse the k-th request sent so far (any infno).
        Reverse(usize),
        /// Reverse a msgid that never arrived.
        ReverseUnknown,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0usize..4, 1i64..200_000, any::<bool>()).prop_map(|(p, a, u)| Op::Sale(p, a, u)),
            2 => (0usize..16).prop_map(Op::Cancel),
            3 => (0usize..16).prop_map(Op::Reverse),
            1 => Just(Op::ReverseUnknown),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn money_is_conserved_whatever_the_order(ops in proptest::collection::vec(op(), 1..40)) {
            let mut t = T::new();
            // (msgid, infno, psn_no) of every money request sent; settlements as (setl_id, mdtrt_id, psn_no).
            let mut sent: Vec<(String, String, String)> = Vec::new();
            let mut setls: Vec<(String, String, String)> = Vec::new();
            for op in ops {
                let before = t.st.ledger();
                let (ok, out) = match op {
                    Op::Sale(p, fen, acct) => {
                        let (psn, certno, insutype) = {
                            let person = &t.st.accounts[p].person;
                            (person.psn_no.to_string(), person.certno.clone(), person.insurances[0].insutype)
                        };
                        let amt = settlement_client::money::Money(fen).to_json();
                        let m = t.msgid();
                        let r = t.send_as(&m, "2102", serde_json::json!({
                            "druginfo": {"psn_no": psn, "mdtrt_cert_type": "02", "mdtrt_cert_no": certno, "medfee_sumamt": amt, "insutype": insutype, "acct_used_flag": if acct { "1" } else { "0" }, "med_type": "41"},
                            "drugdetail": [{"feedetl_sn": "1", "med_list_codg": "X", "det_item_fee_sumamt": amt}]
                        }));
                        sent.push((m, "2102".into(), psn.clone()));
                        if r.infcode == 0 {
                            let si = &r.output.as_ref().unwrap()["setlinfo"];
                            setls.push((si["setl_id"].as_str().unwrap().into(), si["mdtrt_id"].as_str().unwrap().into(), psn));
                        }
                        (r.infcode == 0, r)
                    }
                    Op::Cancel(k) if !setls.is_empty() => {
                        let (s, m, p) = setls[k % setls.len()].clone();
                        let id = t.msgid();
                        let r = t.send_as(&id, "2103", serde_json::json!({"data": {"setl_id": s, "mdtrt_id": m, "psn_no": p}}));
                        sent.push((id, "2103".into(), p));
                        (r.infcode == 0, r)
                    }
                    Op::Reverse(k) if !sent.is_empty() => {
                        let (m, i, p) = sent[k % sent.len()].clone();
                        let r = t.send("2601", serde_json::json!({"data": {"psn_no": p, "omsgid": m, "oinfno": i}}));
                        (r.infcode == 0, r)
                    }
                    _ => {
                        let never = t.msgid();
                        let r = t.send("2601", serde_json::json!({"data": {"psn_no": "42000000000000000001", "omsgid": never, "oinfno": "2102"}}));
                        prop_assert_eq!(settlement_client::wording::meaning(r.err_msg.as_deref().unwrap_or_default()), Some(settlement_client::wording::Meaning::OriginalNotFound));
                        (false, r)
                    }
                };
                let after = t.st.ledger();
                prop_assert!(after.check().is_ok(), "{:?}", after.check());
                if !ok {
                    // A refusal changes nothing but the list of reversals received.
                    prop_assert_eq!(&before.accounts, &after.accounts, "{:?}", out.err_msg);
                    prop_assert_eq!(&before.settlements, &after.settlements);
                    prop_assert_eq!(&before.visits, &after.visits);
                }
            }
        }
    }
}
