//! Visits: outpatient registration (2201, 2202, 2203), inpatient admission
//! and discharge (2401–2405).

use super::*;

impl State {
    /// Outpatient registration (2201): opens a visit.
    pub(super) fn register(&mut self, req: &Request, now: DateTime<Local>) -> Out {
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

    /// Registration cancel (2202).
    pub(super) fn register_cancel(&mut self, req: &Request) -> Out {
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
    pub(super) fn visit_upload(&mut self, req: &Request) -> Out {
        let m = node(req, "mdtrtinfo");
        let id = s(m, "mdtrt_id");
        self.open_visit(id, s(m, "psn_no"), VisitKind::Outpatient)?;
        let med_type = s(m, "med_type").to_string();
        if let Some(v) = self.visits.get_mut(id) {
            v.med_type = med_type;
        }
        Ok(json!({}))
    }

    /// Admission (2401): opens an inpatient visit; reversible by 2601.
    pub(super) fn admit(&mut self, req: &Request, now: DateTime<Local>) -> Out {
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
    pub(super) fn discharge(&mut self, req: &Request) -> Out {
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
    pub(super) fn admission_edit(&mut self, req: &Request) -> Out {
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
    pub(super) fn admission_cancel(&mut self, req: &Request) -> Out {
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
    pub(super) fn discharge_undo(&mut self, req: &Request) -> Out {
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
}
