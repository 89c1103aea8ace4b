//! Pre-settlements, settlements and their cancels: pharmacy (2101–2103),
//! outpatient (2206–2208), inpatient (2303–2305).

use super::*;

impl State {
    /// Pharmacy pre-settle (2101) and settle (2102): the sale is its own visit.
    pub(super) fn pharmacy(&mut self, req: &Request, now: DateTime<Local>, commit: bool) -> Out {
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
    pub(super) fn commit_settlement(
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

    /// Validates a visit settlement: the person, the insurance, the lines
    /// (`batch`: one charge batch, or every unsettled line) and the total.
    #[allow(clippy::type_complexity)]
    pub(super) fn settle_check(
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
    pub(super) fn presettle_out(
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
    pub(super) fn otp_settle(&mut self, req: &Request, now: DateTime<Local>, commit: bool) -> Out {
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
    pub(super) fn ipt_settle(&mut self, req: &Request, now: DateTime<Local>, commit: bool) -> Out {
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
    pub(super) fn cancel(&mut self, req: &Request, now: DateTime<Local>, of: &str) -> Out {
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
    pub(super) fn free_lines(&mut self, mdtrt_id: &str, setl_id: &str) -> VisitKind {
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
}
