//! The queries: visits (5201), a settlement (5203), fee lines (5204).

use super::*;

impl State {
    /// Visit query (5201): the person's visits still open, optionally one
    /// `mdtrt_id` [guess: output node `mdtrtinfo`; the real 5201 also
    /// filters by `begntime`/`endtime`/`med_type`].
    pub(super) fn query_visits(&self, req: &Request) -> Out {
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
    pub(super) fn query_fees(&self, req: &Request) -> Out {
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

    /// Settlement query (5203): a settlement or cancel record still in effect
    /// or cancelled (a reversed one does not exist any more).
    pub(super) fn query_settlement(&self, req: &Request, now: DateTime<Local>) -> Out {
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
}
