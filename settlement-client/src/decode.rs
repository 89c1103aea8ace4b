//! E-voucher decode (电子凭证解码, infno 1162; gateway.md §4.1).
//!
//! Decode turns a scanned 医保码 into an `ecToken` plus the holder's identity.
//! Gateways answer in two shapes: the common envelope (`infcode`, `output`)
//! or the decode service's own (`code`, `message`, `success`, `data`), and a
//! failure may arrive as HTTP 200 with `code != 0`. `data` may even be a JSON
//! string holding JSON. All of these are read here, on both sides.

use serde_json::{Map, Value, json};

use crate::envelope::infcode_of;
use crate::outcome::Outcome;

/// Decode error: not a 医保码 (the platform's own code and message).
pub const NOT_A_MEDICAL_CODE: (i64, &str) = (500159, "请使用医保电子凭证二维码");
/// Decode error: the code has expired [guess: code value].
pub const CODE_EXPIRED: (i64, &str) = (500160, "医保电子凭证二维码已过期，请刷新后重试");
/// Decode error: the code was already used [guess: code value].
pub const CODE_USED: (i64, &str) = (500161, "医保电子凭证二维码已使用，请刷新后重试");

/// What decode needs besides the code.
#[derive(Debug, Clone, Default)]
pub struct DecodeContext {
    /// 用码业务类型, e.g. `02121`.
    pub business_type: String,
    /// `orgId` = fixmedins_code.
    pub org_id: String,
    /// Operator id.
    pub operator_id: String,
    /// Operator name.
    pub operator_name: String,
    /// Department id (optional).
    pub office_id: String,
    /// Department name (optional).
    pub office_name: String,
    /// Terminal id.
    pub term_id: String,
    /// Terminal IP.
    pub term_ip: String,
    /// `deviceType`: `"SelfService"` on an unattended kiosk; empty at a
    /// counter, where it is left out of the request.
    pub device_type: String,
}

/// The decode input `data` node (`deviceType` only when set).
pub fn input_data(qr: &str, ctx: &DecodeContext) -> Value {
    let mut data = json!({
        "ecQrCode": qr,
        "ecQrChannel": "",
        "businessType": ctx.business_type,
        "orgId": ctx.org_id,
        "operatorId": ctx.operator_id,
        "operatorName": ctx.operator_name,
        "officeId": ctx.office_id,
        "officeName": ctx.office_name,
        "termId": ctx.term_id,
        "termIp": ctx.term_ip,
    });
    if !ctx.device_type.is_empty() {
        data["deviceType"] = Value::String(ctx.device_type.clone());
    }
    data
}

/// A decoded 医保码.
#[derive(Clone, PartialEq)]
pub struct Decoded {
    /// The gateway's `data` object as sent (for the API's `decode` field).
    pub data: Map<String, Value>,
}

impl std::fmt::Debug for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoded")
            .field("fields", &self.data.len())
            .finish()
    }
}

impl Decoded {
    fn s(&self, k: &str) -> &str {
        self.data.get(k).and_then(Value::as_str).unwrap_or_default()
    }
    /// The session credential for every later transaction.
    pub fn ec_token(&self) -> &str {
        self.s("ecToken")
    }
    /// Certificate number.
    pub fn id_no(&self) -> &str {
        self.s("idNo")
    }
    /// Certificate type (`01` ID card).
    pub fn id_type(&self) -> &str {
        self.s("idType")
    }
    /// Holder's name.
    pub fn user_name(&self) -> &str {
        self.s("userName")
    }
    /// Insured area (6 digits).
    pub fn insu_org(&self) -> &str {
        self.s("insuOrg")
    }
}

/// Reads a decode response body in either shape.
pub fn read_response(body: Value) -> Outcome<Decoded> {
    let Value::Object(mut obj) = body else {
        return Outcome::Unknown {
            reason: "decode response is not a JSON object".into(),
        };
    };
    let data = if let Some(code) = obj.get("infcode") {
        let Some(code) = infcode_of(code) else {
            return Outcome::Unknown {
                reason: "decode response has a non-numeric infcode".into(),
            };
        };
        if code != 0 {
            return Outcome::Rejected {
                infcode: code,
                err_msg: obj
                    .get("err_msg")
                    .and_then(Value::as_str)
                    .unwrap_or("decode failed")
                    .to_string(),
            };
        }
        match obj.remove("output") {
            Some(Value::Object(mut out)) => out.remove("data").unwrap_or(Value::Object(out)),
            other => other.unwrap_or(Value::Null),
        }
    } else if let Some(code) = obj.get("code") {
        let code = infcode_of(code);
        let failed = obj.get("success") == Some(&Value::Bool(false));
        if code != Some(0) || failed {
            return Outcome::Rejected {
                infcode: code.unwrap_or(-1),
                err_msg: obj
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("decode failed")
                    .to_string(),
            };
        }
        obj.remove("data").unwrap_or(Value::Null)
    } else {
        return Outcome::Unknown {
            reason: "decode response has neither infcode nor code".into(),
        };
    };
    // `data` may be double-encoded: a JSON string holding JSON.
    let data = match data {
        Value::String(s) => match serde_json::from_str::<Value>(&s) {
            Ok(v) => v,
            Err(_) => Value::Null,
        },
        v => v,
    };
    match data {
        Value::Object(m)
            if m.get("ecToken")
                .and_then(Value::as_str)
                .is_some_and(|t| !t.is_empty()) =>
        {
            Outcome::Ok(Decoded { data: m })
        }
        _ => Outcome::Unknown {
            reason: "decode succeeded without an ecToken".into(),
        },
    }
}

/// The decode service's own failure body (simulator side).
pub fn error_body(code: i64, message: &str) -> Value {
    json!({"code": code, "message": message, "success": false})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_on_http_200_is_a_rejection() {
        let o = read_response(
            serde_json::from_str(
                r#"{"code":500159,"message":"请使用医保电子凭证二维码","success":false}"#,
            )
            .unwrap(),
        );
        assert_eq!(
            o,
            Outcome::Rejected {
                infcode: 500159,
                err_msg: "请使用医保电子凭证二维码".into()
            }
        );
    }

    #[test]
    fn envelope_and_bare_shapes_and_double_encoding() {
        let d = r#"{"ecToken":"130000ecmecib288580f0f1a0a0000e7328251","idNo":"130302199001011234","idType":"01","userName":"测试","insuOrg":"130300"}"#;
        let env =
            json!({"infcode": "0", "output": {"data": serde_json::from_str::<Value>(d).unwrap()}});
        let Outcome::Ok(x) = read_response(env) else {
            panic!()
        };
        assert_eq!(x.ec_token(), "130000ecmecib288580f0f1a0a0000e7328251");
        let bare = json!({"code": 0, "message": "成功", "data": d});
        let Outcome::Ok(y) = read_response(bare) else {
            panic!()
        };
        assert_eq!(y, x);
        assert_eq!(y.insu_org(), "130300");
    }

    #[test]
    fn malformed_is_unknown() {
        assert!(matches!(read_response(json!([1])), Outcome::Unknown { .. }));
        assert!(matches!(
            read_response(json!({"code": 0, "data": {}})),
            Outcome::Unknown { .. }
        ));
        assert!(matches!(
            read_response(json!({"hello": 1})),
            Outcome::Unknown { .. }
        ));
    }
}
