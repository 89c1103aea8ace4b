//! The business handlers on real state: flows, refusals, reversals, and a
//! property test that money is conserved.

use super::*;

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
mod flows {
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
