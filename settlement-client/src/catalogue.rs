//! The transaction catalogue as data (gateway.md §4.2).
//!
//! For each infno: its `fsi-paths` path, main input node, required fields,
//! whether it moves money, whether 2601 can reverse it, and how it is undone.
//! Adding an infno is a row here, not a new code path.

use serde_json::Value;

/// What the platform does with one transaction number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnSpec {
    /// Transaction number.
    pub infno: &'static str,
    /// Short English name for logs and errors.
    pub name: &'static str,
    /// Path under the base URL in the `fsi-paths` profile.
    pub path: &'static str,
    /// The input node holding the person and credential fields.
    pub node: &'static str,
    /// Required fields: `node.field`, `node[]` (non-empty list) or
    /// `node[].field` (in every element).
    pub required: &'static [&'static str],
    /// Moves money (a settlement or its cancel).
    pub moves_money: bool,
    /// 2601 can reverse it (gateway.md §5).
    pub reversible: bool,
    /// A settlement counted by `report.usage`.
    pub settlement: bool,
    /// The settlement transaction this one cancels, if it is a cancel.
    pub cancels: Option<&'static str>,
    /// The transaction that undoes this one when it cannot be reversed.
    pub undo: Option<&'static str>,
}

const fn row(
    infno: &'static str,
    name: &'static str,
    path: &'static str,
    node: &'static str,
    required: &'static [&'static str],
) -> TxnSpec {
    TxnSpec {
        infno,
        name,
        path,
        node,
        required,
        moves_money: false,
        reversible: false,
        settlement: false,
        cancels: None,
        undo: None,
    }
}

const fn money(mut s: TxnSpec) -> TxnSpec {
    s.moves_money = true;
    s.reversible = true;
    s
}

const fn reversible(mut s: TxnSpec) -> TxnSpec {
    s.reversible = true;
    s
}

const fn settlement(mut s: TxnSpec) -> TxnSpec {
    s.settlement = true;
    money(s)
}

const fn cancels(mut s: TxnSpec, of: &'static str) -> TxnSpec {
    s.cancels = Some(of);
    money(s)
}

const fn undo(mut s: TxnSpec, by: &'static str) -> TxnSpec {
    s.undo = Some(by);
    s
}

const PHARMACY: &[&str] = &[
    "druginfo.psn_no",
    "druginfo.mdtrt_cert_type",
    "druginfo.mdtrt_cert_no",
    "druginfo.medfee_sumamt",
    "druginfo.insutype",
    "druginfo.med_type",
    "drugdetail[]",
    "drugdetail[].feedetl_sn",
    "drugdetail[].med_list_codg",
    "drugdetail[].det_item_fee_sumamt",
];
const OTP_SETTLE: &[&str] = &[
    "data.psn_no",
    "data.mdtrt_cert_type",
    "data.mdtrt_cert_no",
    "data.med_type",
    "data.medfee_sumamt",
    "data.psn_setlway",
    "data.mdtrt_id",
    "data.chrg_bchno",
    "data.insutype",
    "data.acct_used_flag",
];
const IPT_SETTLE: &[&str] = &[
    "data.psn_no",
    "data.mdtrt_cert_type",
    "data.mdtrt_cert_no",
    "data.medfee_sumamt",
    "data.psn_setlway",
    "data.mdtrt_id",
    "data.insutype",
    "data.acct_used_flag",
];
const SETL_CANCEL: &[&str] = &["data.setl_id", "data.mdtrt_id", "data.psn_no"];
const FEES: &[&str] = &[
    "feedetail[]",
    "feedetail[].feedetl_sn",
    "feedetail[].mdtrt_id",
    "feedetail[].psn_no",
    "feedetail[].det_item_fee_sumamt",
];
const OTP_FEES: &[&str] = &[
    "feedetail[]",
    "feedetail[].feedetl_sn",
    "feedetail[].mdtrt_id",
    "feedetail[].psn_no",
    "feedetail[].chrg_bchno",
    "feedetail[].det_item_fee_sumamt",
];

/// Every transaction ybpos knows. Paths marked \[guess\] in gateway.md are
/// overridable per infno with `[gateway.paths]`.
pub static CATALOGUE: &[TxnSpec] = &[
    row(
        "9001",
        "sign-in",
        "/signInSignOutService/signIn",
        "signIn",
        &["signIn.opter_no", "signIn.mac", "signIn.ip"],
    ),
    row(
        "9002",
        "sign-out",
        "/signInSignOutService/signOut",
        "signOut",
        &["signOut.sign_no", "signOut.opter_no"],
    ),
    row(
        "1101",
        "person info",
        "/fsiPsnInfoService/queryPsnInfo",
        "data",
        &["data.mdtrt_cert_type", "data.mdtrt_cert_no"],
    ),
    row(
        "1162",
        "e-voucher decode",
        "/hsecfc/localQrCodeQuery",
        "data",
        &["data.ecQrCode", "data.businessType"],
    ),
    row(
        "2101",
        "pharmacy pre-settle",
        "/drugstoreSettleService/preSettle",
        "druginfo",
        PHARMACY,
    ),
    settlement(row(
        "2102",
        "pharmacy settle",
        "/drugstoreSettleService/settle",
        "druginfo",
        PHARMACY,
    )),
    cancels(
        row(
            "2103",
            "pharmacy settle cancel",
            "/drugstoreSettleService/cancelSettle",
            "data",
            SETL_CANCEL,
        ),
        "2102",
    ),
    undo(
        row(
            "2201",
            "outpatient register",
            "/outpatientDocInfoService/outpatientRregistration",
            "data",
            &[
                "data.psn_no",
                "data.insutype",
                "data.begntime",
                "data.mdtrt_cert_type",
                "data.mdtrt_cert_no",
                "data.ipt_otp_no",
            ],
        ),
        "2202",
    ),
    row(
        "2202",
        "outpatient register cancel",
        "/outpatientDocInfoService/outpatientRegistrationCancel",
        "data",
        &["data.psn_no", "data.mdtrt_id", "data.ipt_otp_no"],
    ),
    row(
        "2203",
        "visit upload",
        "/outpatientDocInfoService/outpatientMdtrtinfoUp",
        "mdtrtinfo",
        &[
            "mdtrtinfo.mdtrt_id",
            "mdtrtinfo.psn_no",
            "mdtrtinfo.med_type",
        ],
    ),
    undo(
        row(
            "2204",
            "outpatient fee upload",
            "/outpatientDocInfoService/outpatientFeeListUp",
            "feedetail",
            OTP_FEES,
        ),
        "2205",
    ),
    row(
        "2205",
        "outpatient fee upload cancel",
        "/outpatientDocInfoService/outpatientFeeListUpCancel",
        "data",
        &["data.mdtrt_id", "data.chrg_bchno", "data.psn_no"],
    ),
    row(
        "2206",
        "outpatient pre-settle",
        "/outpatientSettleService/preSettletment",
        "data",
        OTP_SETTLE,
    ),
    settlement(row(
        "2207",
        "outpatient settle",
        "/outpatientSettleService/saveSettletmentV2",
        "data",
        OTP_SETTLE,
    )),
    cancels(
        row(
            "2208",
            "outpatient settle cancel",
            "/outpatientSettleService/cancleSettletment",
            "data",
            SETL_CANCEL,
        ),
        "2207",
    ),
    undo(
        row(
            "2301",
            "inpatient fee upload",
            "/hospFeeDtlService/feeDtlUp",
            "feedetail",
            FEES,
        ),
        "2302",
    ),
    row(
        "2302",
        "inpatient fee upload cancel",
        "/hospFeeDtlService/feeDtlCl",
        "data",
        &["data.mdtrt_id", "data.psn_no"],
    ),
    row(
        "2303",
        "inpatient pre-settle",
        "/hospSettService/preSett",
        "data",
        IPT_SETTLE,
    ),
    settlement(row(
        "2304",
        "inpatient settle",
        "/hospSettService/settV2",
        "data",
        IPT_SETTLE,
    )),
    cancels(
        row(
            "2305",
            "inpatient settle cancel",
            "/hospSettService/settCl",
            "data",
            SETL_CANCEL,
        ),
        "2304",
    ),
    reversible(row(
        "2401",
        "admission",
        "/hospitalRegisterService/hospitalRegisterSave",
        "mdtrtinfo",
        &[
            "mdtrtinfo.psn_no",
            "mdtrtinfo.insutype",
            "mdtrtinfo.begntime",
            "mdtrtinfo.mdtrt_cert_type",
            "mdtrtinfo.mdtrt_cert_no",
            "mdtrtinfo.med_type",
            "mdtrtinfo.ipt_no",
        ],
    )),
    undo(
        row(
            "2402",
            "discharge",
            "/dscgService/dischargeProcess",
            "dscginfo",
            &[
                "dscginfo.mdtrt_id",
                "dscginfo.psn_no",
                "dscginfo.insutype",
                "dscginfo.endtime",
            ],
        ),
        "2405",
    ),
    row(
        "2403",
        "admission edit",
        "/hospitalRegisterService/hospitalRegisterEdit",
        "adminfo",
        &["adminfo.mdtrt_id", "adminfo.psn_no"],
    ),
    row(
        "2404",
        "admission cancel",
        "/hospitalRegisterService/hospitalRegisterCancel",
        "data",
        &["data.mdtrt_id", "data.psn_no"],
    ),
    row(
        "2405",
        "discharge undo",
        "/dscgService/dischargeUndo",
        "data",
        &["data.mdtrt_id", "data.psn_no"],
    ),
    row(
        "2601",
        "reversal",
        "/reverseService/revsMethod",
        "data",
        &["data.psn_no", "data.omsgid", "data.oinfno"],
    ),
    // [guess: path] 就诊信息查询; the engine uses it to find a registration
    // (2201) whose answer was lost, by the hospital's own ipt_otp_no.
    row(
        "5201",
        "visit query",
        "/fsiIntegratedQueryService/queryMdtrtInfo",
        "data",
        &["data.psn_no"],
    ),
    row(
        "5203",
        "settlement query",
        "/fsiIntegratedQueryService/querySetlInfo",
        "data",
        &["data.psn_no", "data.setl_id", "data.mdtrt_id"],
    ),
    // [guess: path from platform-sources.md §3; fields] 费用明细查询; the
    // engine uses it to learn whether an inpatient fee upload (2301) whose
    // answer was lost took effect.
    row(
        "5204",
        "fee detail query",
        "/fsiIntegratedQueryService/queryFeeList",
        "data",
        &["data.psn_no", "data.mdtrt_id"],
    ),
];

/// Looks an infno up (`2207A` falls back to `2207`'s row when not listed).
pub fn spec(infno: &str) -> Option<&'static TxnSpec> {
    CATALOGUE.iter().find(|s| s.infno == infno).or_else(|| {
        let base = infno.strip_suffix('A')?;
        CATALOGUE.iter().find(|s| s.infno == base)
    })
}

/// Finds the infno served at an `fsi-paths` path (simulator side).
pub fn by_path(path: &str) -> Option<&'static TxnSpec> {
    CATALOGUE.iter().find(|s| s.path == path)
}

fn present(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    }
}

/// Checks `input` against the spec's required fields; `Err` names the first
/// missing field as `input.node.field` (or `input.node[3].field`).
pub fn check_required(spec: &TxnSpec, input: &Value) -> Result<(), String> {
    for req in spec.required {
        let (node, field) = req.split_once('.').unwrap_or((req, ""));
        if let Some(list) = node.strip_suffix("[]") {
            let items = input.get(list);
            if field.is_empty() {
                if !matches!(items, Some(Value::Array(a)) if !a.is_empty()) {
                    return Err(format!("input.{list}"));
                }
                continue;
            }
            if let Some(Value::Array(a)) = items {
                for (i, item) in a.iter().enumerate() {
                    if !present(item.get(field)) {
                        return Err(format!("input.{list}[{i}].{field}"));
                    }
                }
            }
        } else if !present(input.get(node).and_then(|n| n.get(field))) {
            return Err(format!("input.{req}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reversible_set_is_the_platforms() {
        let rev: Vec<_> = CATALOGUE
            .iter()
            .filter(|s| s.reversible)
            .map(|s| s.infno)
            .collect();
        assert_eq!(
            rev,
            ["2102", "2103", "2207", "2208", "2304", "2305", "2401"]
        );
        let setl: Vec<_> = CATALOGUE
            .iter()
            .filter(|s| s.settlement)
            .map(|s| s.infno)
            .collect();
        assert_eq!(setl, ["2102", "2207", "2304"]);
    }

    #[test]
    fn infno_variants_and_paths() {
        assert_eq!(spec("2207A").unwrap().infno, "2207");
        assert!(spec("9999").is_none());
        assert_eq!(by_path("/reverseService/revsMethod").unwrap().infno, "2601");
        let mut paths: Vec<_> = CATALOGUE.iter().map(|s| s.path).collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), CATALOGUE.len(), "paths are unique");
    }

    #[test]
    fn required_fields_are_named() {
        let s = spec("2103").unwrap();
        assert_eq!(
            check_required(s, &json!({"data": {"setl_id": "1", "mdtrt_id": "2"}})),
            Err("input.data.psn_no".into())
        );
        assert_eq!(
            check_required(
                s,
                &json!({"data": {"setl_id": "1", "mdtrt_id": "2", "psn_no": "3"}})
            ),
            Ok(())
        );
        let s = spec("2204").unwrap();
        assert_eq!(
            check_required(s, &json!({"feedetail": []})),
            Err("input.feedetail".into())
        );
        assert_eq!(
            check_required(
                s,
                &json!({"feedetail": [{"feedetl_sn": "1", "mdtrt_id": "m", "psn_no": "p", "det_item_fee_sumamt": 1.00}, {"feedetl_sn": "2"}]})
            ),
            Err("input.feedetail[1].mdtrt_id".into())
        );
    }
}
