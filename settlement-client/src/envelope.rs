//! The request and response envelopes of gateway.md §2–3.
//!
//! One set of types serves both sides: the client builds [`Request`]s and
//! reads [`Response`]s, the simulator does the opposite. `infcode` arrives as
//! a number or as a string; both are accepted.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// The common request envelope (gateway.md §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Transaction number, e.g. `2207` or `2207A`.
    pub infno: String,
    /// Unique id of this request; the handle for reversal.
    pub msgid: String,
    /// Where care happens.
    pub mdtrtarea_admvs: String,
    /// Where the person is insured; required when `input` names a `psn_no`.
    #[serde(default)]
    pub insuplc_admdvs: String,
    /// Receiving system code.
    #[serde(default)]
    pub recer_sys_code: String,
    /// Device number.
    #[serde(default)]
    pub dev_no: String,
    /// Device safety info.
    #[serde(default)]
    pub dev_safe_info: String,
    /// Signature info.
    #[serde(default)]
    pub cainfo: String,
    /// Signature type.
    #[serde(default)]
    pub signtype: String,
    /// Interface version.
    #[serde(default)]
    pub infver: String,
    /// `1` staff, `2` kiosk, `3` mobile.
    #[serde(default)]
    pub opter_type: String,
    /// Operator id.
    #[serde(default)]
    pub opter: String,
    /// Operator name.
    #[serde(default)]
    pub opter_name: String,
    /// `yyyy-MM-dd HH:mm:ss`.
    #[serde(default)]
    pub inf_time: String,
    /// Institution code.
    #[serde(default)]
    pub fixmedins_code: String,
    /// Institution name.
    #[serde(default)]
    pub fixmedins_name: String,
    /// From sign-in (9001).
    #[serde(default)]
    pub sign_no: String,
    /// The transaction body.
    #[serde(default)]
    pub input: Value,
}

/// The common response envelope (gateway.md §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// `0` success, negative failure; number or string on the wire.
    #[serde(deserialize_with = "infcode_any")]
    pub infcode: i64,
    /// Receiver's message id; may be null on error.
    #[serde(default)]
    pub inf_refmsgid: Option<String>,
    /// `yyyyMMddHHmmssSSS`.
    #[serde(default)]
    pub refmsg_time: Option<String>,
    /// `yyyyMMddHHmmssSSS`.
    #[serde(default)]
    pub respond_time: Option<String>,
    /// Error text (`"success"` in some provinces on success).
    #[serde(default)]
    pub err_msg: Option<String>,
    /// Warning text.
    #[serde(default)]
    pub warn_msg: Option<String>,
    /// Signature info.
    #[serde(default)]
    pub cainfo: Option<String>,
    /// Signature type.
    #[serde(default)]
    pub signtype: Option<String>,
    /// The transaction's output, or null.
    #[serde(default)]
    pub output: Option<Value>,
}

/// Reads `infcode` given as `0`, `-1`, `"0"` or `"-1"`.
fn infcode_any<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    use serde::de::Error;
    let v = Value::deserialize(d)?;
    infcode_of(&v).ok_or_else(|| D::Error::custom(format!("infcode is not an integer: {v}")))
}

/// Reads an infcode-like value (number or numeric string).
pub fn infcode_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.to_string().parse().ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl Response {
    /// A success with `output`.
    pub fn success(output: Value) -> Self {
        Response {
            infcode: 0,
            inf_refmsgid: None,
            refmsg_time: None,
            respond_time: None,
            err_msg: Some("success".into()),
            warn_msg: None,
            cainfo: None,
            signtype: None,
            output: Some(output),
        }
    }

    /// A failure with `infcode -1` and a message.
    pub fn failure(err_msg: impl Into<String>) -> Self {
        Response {
            infcode: -1,
            err_msg: Some(err_msg.into()),
            output: None,
            ..Response::success(Value::Null)
        }
    }
}

/// `input` names a person when any node carries a non-empty `psn_no`.
pub fn input_names_psn_no(input: &Value) -> Option<&str> {
    match input {
        Value::Object(m) => {
            if let Some(Value::String(s)) = m.get("psn_no")
                && !s.is_empty()
            {
                return Some(s);
            }
            m.values().find_map(input_names_psn_no)
        }
        Value::Array(items) => items.iter().find_map(input_names_psn_no),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real 9001 success captured from Zhejiang (platform-sources.md §3).
    const SIGNIN_OK: &str = r#"{"output":{"signinoutb":{"sign_no":"680003","sign_time":"2022-01-21 00:00:00"}},"infcode":0,"warn_msg":null,"cainfo":null,"err_msg":"success","refmsg_time":"20220121144742293","signtype":null,"respond_time":"20220121144742303","inf_refmsgid":"330000202201211447420159618450"}"#;

    /// The real 2601 refusal (platform-sources.md §4).
    const REVERSAL_REFUSED: &str = r#"{"infcode":"-1","inf_refmsgid":null,"err_msg":"FSI-调用业务基础子系统冲正失败:冲正的结算信息退费结算标志不为未退费，不能办理冲正交易[iptPsnSetlMgtBO_4412][outpatientSettleBO_40]","output":null}"#;

    #[test]
    fn signin_success_round_trips() {
        let r: Response = serde_json::from_str(SIGNIN_OK).unwrap();
        assert_eq!(r.infcode, 0);
        assert_eq!(
            r.output.as_ref().unwrap()["signinoutb"]["sign_no"],
            "680003"
        );
        assert_eq!(
            r.inf_refmsgid.as_deref(),
            Some("330000202201211447420159618450")
        );
        let again: Response = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(again, r);
    }

    #[test]
    fn reversal_refusal_with_string_infcode() {
        let r: Response = serde_json::from_str(REVERSAL_REFUSED).unwrap();
        assert_eq!(r.infcode, -1);
        assert!(r.output.is_none());
        assert!(r.err_msg.unwrap().contains("退费结算标志"));
    }

    /// A 9001 request in the shape of gateway.md §2 (ZJ-C style).
    const SIGNIN_REQ: &str = r#"{"infno":"9001","msgid":"H33018300564202201211447429999","mdtrtarea_admvs":"330100","insuplc_admdvs":"","recer_sys_code":"FSI_LOCAL","dev_no":"","dev_safe_info":"","cainfo":"","signtype":"","infver":"V1.0","opter_type":"1","opter":"001","opter_name":"管理员","inf_time":"2022-01-21 14:47:42","fixmedins_code":"H33018300564","fixmedins_name":"示例医院","sign_no":"","input":{"signIn":{"opter_no":"001","mac":"00-16-3E-01-02-03","ip":"10.0.0.8"}}}"#;

    /// A 2601 request in the shape of gateway.md §4.2.
    const REVERSAL_REQ: &str = r#"{"infno":"2601","msgid":"H33018300564202201211450010001","mdtrtarea_admvs":"330100","insuplc_admdvs":"330100","recer_sys_code":"FSI_LOCAL","dev_no":"","dev_safe_info":"","cainfo":"","signtype":"","infver":"V1.0","opter_type":"1","opter":"001","opter_name":"管理员","inf_time":"2022-01-21 14:50:01","fixmedins_code":"H33018300564","fixmedins_name":"示例医院","sign_no":"680003","input":{"data":{"psn_no":"33000000000000000001","omsgid":"H33018300564202201211447429999","oinfno":"2207"}}}"#;

    #[test]
    fn vectors_round_trip_field_for_field() {
        let raw: Value = serde_json::from_str(SIGNIN_OK).unwrap();
        let r: Response = serde_json::from_str(SIGNIN_OK).unwrap();
        assert_eq!(serde_json::to_value(&r).unwrap(), raw);
        for req in [SIGNIN_REQ, REVERSAL_REQ] {
            let raw: Value = serde_json::from_str(req).unwrap();
            let r: Request = serde_json::from_str(req).unwrap();
            assert_eq!(serde_json::to_value(&r).unwrap(), raw);
        }
        let r: Request = serde_json::from_str(REVERSAL_REQ).unwrap();
        assert_eq!(input_names_psn_no(&r.input), Some("33000000000000000001"));
        // The refusal: infcode string "-1" becomes the number -1; every other
        // field survives, and the message is recognised as "already cancelled".
        let refused: Response = serde_json::from_str(REVERSAL_REFUSED).unwrap();
        let back = serde_json::to_value(&refused).unwrap();
        assert_eq!(back["infcode"], -1);
        assert_eq!(back["err_msg"], crate::wording::REFUND_FLAG_SET_CAPTURE);
        assert!(back["inf_refmsgid"].is_null() && back["output"].is_null());
        let again: Response = serde_json::from_value(back).unwrap();
        assert_eq!(again, refused);
        let judged =
            crate::gateway::judge_envelope(serde_json::from_str(REVERSAL_REFUSED).unwrap());
        assert!(matches!(
            crate::reversal::ReversalAnswer::of(&judged),
            crate::reversal::ReversalAnswer::RefusedCancelled { .. }
        ));
    }

    #[test]
    fn infcode_must_be_numeric() {
        assert!(serde_json::from_str::<Response>(r#"{"infcode":"ok"}"#).is_err());
        assert!(serde_json::from_str::<Response>(r#"{"infcode":null}"#).is_err());
    }

    #[test]
    fn psn_no_is_found_in_any_node() {
        let v: Value =
            serde_json::from_str(r#"{"druginfo":{"psn_no":"P1"},"drugdetail":[]}"#).unwrap();
        assert_eq!(input_names_psn_no(&v), Some("P1"));
        let v: Value = serde_json::from_str(r#"{"data":{"psn_no":""}}"#).unwrap();
        assert_eq!(input_names_psn_no(&v), None);
    }
}
