//! Fee uploads (2204, 2301) and fee cancels (2205 by batch, 2302 by line).

use super::*;

impl State {
    /// Fee upload (2204 outpatient, 2301 inpatient).
    pub(super) fn upload_fees(&mut self, req: &Request, kind: VisitKind) -> Out {
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
    pub(super) fn otp_fees_cancel(&mut self, req: &Request) -> Out {
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
    pub(super) fn ipt_fees_cancel(&mut self, req: &Request) -> Out {
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
    pub(super) fn fees_cancel(
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
}
