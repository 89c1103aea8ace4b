//! The SDK's input envelope: `{orgId, transType, data:{orgId, businessType,
//! operatorId, operatorName, officeId, officeName, deviceType}, extra}` →
//! the `businessType` to scan for, or why the request cannot be served.

use serde_json::{Map, Value};

use crate::answer::codes;
use crate::config::Encoding;

/// The `transType`s served: the library reads the code from the scanner and
/// decodes it (`ec.query`; `cn.nhsa.qrcode.get` asks a terminal to do the
/// same, which ybposd is).
pub const SERVED_TRANS_TYPES: [&str; 2] = ["ec.query", "cn.nhsa.qrcode.get"];

/// What the answer repeats from the request.
#[derive(Debug, Clone, PartialEq)]
pub struct Echo {
    /// `orgId` (top level, else `data.orgId`; empty when absent).
    pub org_id: String,
    /// `extra` as given (any JSON; `""` when absent).
    pub extra: Value,
}

impl Default for Echo {
    /// No `orgId`, `extra` `""` (what an unreadable request echoes).
    fn default() -> Self {
        Echo {
            org_id: String::new(),
            extra: Value::String(String::new()),
        }
    }
}

/// A request the daemon can serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRequest {
    /// The 5-digit 用码业务类型 (`data.businessType`).
    pub business_type: String,
    /// `data.deviceType` (`"SelfService"` on kiosks). Read, and not acted
    /// on: ybposd's `scan.wait` has no kiosk mode today.
    pub device_type: String,
}

/// Why a call's input was refused (all answered with [`codes::BAD_INPUT`],
/// except an unsupported `transType`: [`codes::UNSUPPORTED`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    /// The input pointer was NULL.
    Null,
    /// No terminator within the first `usize` bytes.
    TooLong(usize),
    /// The bytes are not valid text in the configured encoding.
    Encoding(Encoding),
    /// Not JSON (serde_json's reason: a position, never the content).
    Json(String),
    /// JSON, but not an object.
    NotObject,
    /// No `data` object.
    NoData,
    /// No `data.businessType`.
    NoBusinessType,
    /// `data.businessType` is not 5 digits.
    BadBusinessType,
    /// A `transType` this library does not serve (at most 64 characters).
    Unsupported(String),
}

impl InputError {
    /// The answer's `code`.
    pub fn code(&self) -> i64 {
        match self {
            InputError::Unsupported(_) => codes::UNSUPPORTED,
            _ => codes::BAD_INPUT,
        }
    }

    /// The answer's Chinese `message`.
    pub fn message(&self) -> String {
        match self {
            InputError::Null => "入参无效：入参指针为 NULL".into(),
            InputError::TooLong(n) => {
                format!("入参无效：入参超过 {n} 字节（或缺少结尾的 NUL）")
            }
            InputError::Encoding(Encoding::Utf8) => "入参无效：不是 UTF-8 文本（若传入的是 GBK，请设置 YBPOS_COMPAT_ENCODING=gbk）".into(),
            InputError::Encoding(Encoding::Gbk) => "入参无效：不是 GBK 文本（YBPOS_COMPAT_ENCODING=gbk）".into(),
            InputError::Json(why) => format!("入参无效：不是合法的 JSON（{why}）"),
            InputError::NotObject => {
                "入参无效：应为 JSON 对象 {orgId, transType, data, extra}".into()
            }
            InputError::NoData => "入参无效：缺少 data 对象".into(),
            InputError::NoBusinessType => {
                "入参无效：缺少 data.businessType（用码业务类型，如药店购药 02121）".into()
            }
            InputError::BadBusinessType => {
                "入参无效：data.businessType 应为 5 位数字的用码业务类型，如药店购药 02121、门诊结算 01301".into()
            }
            InputError::Unsupported(t) => format!(
                "不支持的交易类型 transType={t:?}：ybpos 只提供扫医保码解码（ec.query）"
            ),
        }
    }
}

/// Reads the envelope. The echo is filled as far as the input allows, so an
/// error answer still carries the caller's `orgId` and `extra`.
pub fn parse(text: &str) -> (Echo, Result<ScanRequest, InputError>) {
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return (Echo::default(), Err(InputError::Json(json_reason(&e)))),
    };
    let Value::Object(top) = v else {
        return (Echo::default(), Err(InputError::NotObject));
    };
    let data = data_object(&top);
    let echo = Echo {
        org_id: string_field(&top, "orgId")
            .or_else(|| data.as_ref().and_then(|d| string_field(d, "orgId")))
            .unwrap_or_default(),
        extra: top
            .get("extra")
            .cloned()
            .unwrap_or_else(|| Value::String(String::new())),
    };
    (echo, scan_request(&top, data.as_ref()))
}

fn scan_request(
    top: &Map<String, Value>,
    data: Option<&Map<String, Value>>,
) -> Result<ScanRequest, InputError> {
    // An envelope without transType is taken as ec.query (EcQuery's callers
    // may leave it out); any other value must be one we serve.
    match top.get("transType") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if SERVED_TRANS_TYPES.contains(&t.as_str()) => {}
        Some(other) => {
            let t = match other {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            return Err(InputError::Unsupported(t.chars().take(64).collect()));
        }
    }
    let data = data.ok_or(InputError::NoData)?;
    let business_type = match data.get("businessType") {
        None | Some(Value::Null) => return Err(InputError::NoBusinessType),
        Some(Value::String(s)) if s.is_empty() => return Err(InputError::NoBusinessType),
        Some(Value::String(s)) if s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.clone()
        }
        Some(_) => return Err(InputError::BadBusinessType),
    };
    Ok(ScanRequest {
        business_type,
        device_type: string_field(data, "deviceType").unwrap_or_default(),
    })
}

/// `data` as an object; some callers pass it double-encoded, as the SDK's
/// output does, so a string holding a JSON object is read too.
fn data_object(top: &Map<String, Value>) -> Option<Map<String, Value>> {
    match top.get("data")? {
        Value::Object(m) => Some(m.clone()),
        Value::String(s) => match serde_json::from_str(s) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        },
        _ => None,
    }
}

fn string_field(m: &Map<String, Value>, k: &str) -> Option<String> {
    match m.get(k)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// serde_json's reason without its text excerpt (it quotes none for `Value`
/// parsing, but only the position is needed).
fn json_reason(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Eof => "内容不完整，可能被截断",
        serde_json::error::Category::Syntax => "语法错误",
        serde_json::error::Category::Data => "数据错误",
        serde_json::error::Category::Io => "读取错误",
    };
    format!("{what}，第 {} 行第 {} 列", e.line(), e.column())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const OK: &str = r#"{"orgId":"H42130200001","transType":"ec.query","data":{"orgId":"H42130200001","businessType":"02121","operatorId":"001","operatorName":"收款员","officeId":"","officeName":"","deviceType":""},"extra":{"k":1}}"#;

    #[test]
    fn the_sdk_envelope() {
        let (echo, r) = parse(OK);
        assert_eq!(echo.org_id, "H42130200001");
        assert_eq!(echo.extra, json!({"k": 1}));
        let r = r.unwrap();
        assert_eq!(r.business_type, "02121");
        assert_eq!(r.device_type, "");
    }

    #[test]
    fn lenient_where_callers_differ() {
        // Jiangsu: no extra, orgId only in data; kiosk deviceType; no transType.
        let (echo, r) =
            parse(r#"{"data":{"orgId":"X1","businessType":"01101","deviceType":"SelfService"}}"#);
        assert_eq!(echo.org_id, "X1");
        assert_eq!(echo.extra, json!(""));
        assert_eq!(r.unwrap().device_type, "SelfService");
        // data double-encoded.
        let (_, r) =
            parse(r#"{"transType":"cn.nhsa.qrcode.get","data":"{\"businessType\":\"01301\"}"}"#);
        assert_eq!(r.unwrap().business_type, "01301");
    }

    #[test]
    fn refusals() {
        let cases: &[(&str, InputError)] = &[
            ("", InputError::Json(String::new())),
            ("{not json", InputError::Json(String::new())),
            (&OK[..40], InputError::Json(String::new())),
            ("[1,2]", InputError::NotObject),
            ("\"ec.query\"", InputError::NotObject),
            (r#"{"transType":"ec.query"}"#, InputError::NoData),
            (r#"{"transType":"ec.query","data":[]}"#, InputError::NoData),
            (
                r#"{"transType":"ec.query","data":{}}"#,
                InputError::NoBusinessType,
            ),
            (
                r#"{"data":{"businessType":""}}"#,
                InputError::NoBusinessType,
            ),
            (
                r#"{"data":{"businessType":2121}}"#,
                InputError::BadBusinessType,
            ),
            (
                r#"{"data":{"businessType":"2121"}}"#,
                InputError::BadBusinessType,
            ),
            (
                r#"{"data":{"businessType":"0212a"}}"#,
                InputError::BadBusinessType,
            ),
            (
                r#"{"transType":"cn.nhsa.cert.get","data":{"businessType":"02121"}}"#,
                InputError::Unsupported("cn.nhsa.cert.get".into()),
            ),
            (
                r#"{"transType":7,"data":{"businessType":"02121"}}"#,
                InputError::Unsupported("7".into()),
            ),
        ];
        for (input, want) in cases {
            let got = parse(input).1.unwrap_err();
            match (want, &got) {
                (InputError::Json(_), InputError::Json(why)) => {
                    assert!(!why.is_empty());
                }
                _ => assert_eq!(&got, want, "{input}"),
            }
            assert!(!got.message().is_empty());
        }
        let e = parse(&OK[..40]).1.unwrap_err();
        assert!(e.message().contains("截断"), "{}", e.message());
        assert_eq!(
            parse(r#"{"transType":"cn.nhsa.cert.get","data":{}}"#)
                .1
                .unwrap_err()
                .code(),
            codes::UNSUPPORTED
        );
        assert!(
            InputError::Unsupported("cn.nhsa.cert.get".into())
                .message()
                .contains("不支持")
        );
        let long = format!(r#"{{"transType":"{}","data":{{}}}}"#, "t".repeat(1000));
        let Err(InputError::Unsupported(t)) = parse(&long).1 else {
            panic!()
        };
        assert_eq!(t.len(), 64);
    }

    #[test]
    fn a_refused_request_still_echoes() {
        let (echo, r) = parse(r#"{"orgId":"H1","transType":"cn.nhsa.cert.get","extra":"x"}"#);
        assert!(r.is_err());
        assert_eq!(echo.org_id, "H1");
        assert_eq!(echo.extra, json!("x"));
    }
}
