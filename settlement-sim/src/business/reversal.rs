//! Reversal (2601): undoes exactly the request a msgid names.

use super::*;

/// The real Zhejiang refusal to reverse a settlement that was cancelled
/// (platform-sources.md §4). The simulator words its answers itself, never
/// with the client's constants, so a client that only knows its own
/// wording is caught by the tests.
const REFUND_FLAG_SET_REFUSAL: &str = "FSI-调用业务基础子系统冲正失败:冲正的结算信息退费结算标志不为未退费，不能办理冲正交易[iptPsnSetlMgtBO_4412][outpatientSettleBO_40]";

/// What the ledger notes for a 2601 of an unknown msgid answered `infcode 0`
/// ([`crate::SimSettings::reverse_unknown_ok`]).
const UNKNOWN_REVERSED: &str = "unknown msgid: answered success, nothing reversed";

impl State {
    /// Reversal (2601): undoes exactly the request `omsgid`.
    pub(super) fn reverse(&mut self, req: &Request, now: DateTime<Local>) -> Out {
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

    pub(super) fn reverse_inner(
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
