//! The SDK's output envelope `{orgId, code, message, data, extra}`: `code` 0
//! with `data` a JSON *string* holding the decode result, or an error
//! `code` with a Chinese `message` and `data` null; and [`fit`], which
//! guarantees the written answer fits the caller's buffer.

use serde_json::{Map, Value, json};

use crate::client::CallError;
use crate::config::{Config, Encoding};
use crate::request::Echo;
use crate::text::encode_json;

/// The answer's `code` values. 0 and -2 are the SDK's (success; no scan or
/// cancelled, which kiosk pages pass over silently); 1xxx–5xxx are ybposd's
/// API error codes (local-api.md) where the daemon answered; 9xxx are this
/// library's own.
pub mod codes {
    /// Success: `data` holds the person.
    pub const OK: i64 = 0;
    /// Nothing was scanned in time (or the wait was cancelled).
    pub const NO_SCAN: i64 = -2;
    /// A payment code was scanned instead of a 医保码.
    pub const NOT_MEDICAL_CODE: i64 = 1002;
    /// Another wait holds the scanner.
    pub const SCANNER_BUSY: i64 = 1003;
    /// The scanner is not configured or not connected.
    pub const SCANNER_UNAVAILABLE: i64 = 1004;
    /// The gateway could not be reached (nothing was decoded).
    pub const GATEWAY_OFFLINE: i64 = 2001;
    /// The gateway refused (1101: `err_msg` in the message).
    pub const GATEWAY_REJECTED: i64 = 2002;
    /// Decode refused the code: used, expired, not a 医保码.
    pub const DECODE_FAILED: i64 = 2004;
    /// The daemon is overloaded.
    pub const OVERLOADED: i64 = 5001;
    /// ybposd is not running (nothing listens on the socket).
    pub const DAEMON_NOT_RUNNING: i64 = 9001;
    /// ybposd went away during the call (stopped or restarted).
    pub const DAEMON_LOST: i64 = 9002;
    /// The input is unusable (NULL, too long, bad encoding, not the SDK's JSON).
    pub const BAD_INPUT: i64 = 9003;
    /// A `transType` this library does not serve.
    pub const UNSUPPORTED: i64 = 9004;
    /// The answer would not fit the caller's buffer.
    pub const TOO_LARGE: i64 = 9005;
    /// ybposd did not answer in time, or answered something unreadable.
    pub const DAEMON_ERROR: i64 = 9006;
    /// The socket's permissions refuse this user.
    pub const ACCESS_DENIED: i64 = 9007;
    /// A `YBPOS_COMPAT_*` variable has a bad value.
    pub const BAD_CONFIG: i64 = 9008;
    /// The library failed (a bug): nothing was done.
    pub const INTERNAL: i64 = 9009;
}

/// The fields of `data`, in the SDK's order.
pub const DATA_FIELDS: [&str; 11] = [
    "idNo",
    "idType",
    "userName",
    "ecToken",
    "insuOrg",
    "ecIndexNo",
    "gender",
    "birthday",
    "nationality",
    "email",
    "extData",
];

/// One answer in the SDK's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The request's `orgId`.
    pub org_id: String,
    /// 0, or an error from [`codes`].
    pub code: i64,
    /// `成功`, or what went wrong, in Chinese.
    pub message: String,
    /// The decode result as JSON text (`data` is this string), or none.
    pub data: Option<String>,
    /// The request's `extra`.
    pub extra: Value,
}

impl Answer {
    /// An error answer.
    pub fn error(echo: Echo, code: i64, message: String) -> Answer {
        Answer {
            org_id: echo.org_id,
            code,
            message,
            data: None,
            extra: echo.extra,
        }
    }

    /// The success answer for ybposd's identity result: `decode` holds the
    /// platform's decode fields, `credential.mdtrt_cert_no` the ecToken.
    pub fn success(echo: Echo, result: &Value) -> Answer {
        let decode = result.get("decode");
        let mut data = Map::new();
        for k in DATA_FIELDS {
            let v = if k == "ecToken" {
                result
                    .pointer("/credential/mdtrt_cert_no")
                    .or_else(|| decode.and_then(|d| d.get(k)))
            } else {
                decode.and_then(|d| d.get(k))
            };
            data.insert(k.to_string(), Value::String(text_of(v)));
        }
        Answer {
            org_id: echo.org_id,
            code: codes::OK,
            message: "成功".into(),
            data: Some(Value::Object(data).to_string()),
            extra: echo.extra,
        }
    }

    /// The error answer for a failed `scan.wait`.
    pub fn from_call_error(echo: Echo, e: &CallError, config: &Config) -> Answer {
        let (code, message) = match e {
            CallError::NotRunning { socket, .. } => (
                codes::DAEMON_NOT_RUNNING,
                format!(
                    "ybposd 服务未运行（无法连接 {}），请启动：systemctl start ybposd",
                    socket.display()
                ),
            ),
            CallError::Denied { socket } => (
                codes::ACCESS_DENIED,
                format!(
                    "无权连接 ybposd（{}）：请把运行本程序的用户加入 ybpos 组",
                    socket.display()
                ),
            ),
            CallError::Lost => (
                codes::DAEMON_LOST,
                "ybposd 在等待扫码时断开（服务已停止或重启），请重试".into(),
            ),
            CallError::NoAnswer(d) => (
                codes::DAEMON_ERROR,
                format!("ybposd 未在 {} 秒内应答，请重试", d.as_secs()),
            ),
            CallError::Protocol(why) => {
                (codes::DAEMON_ERROR, format!("ybposd 的应答无法识别：{why}"))
            }
            CallError::Daemon {
                code,
                message,
                data,
            } => daemon_error(*code, message, data, config),
        };
        Answer::error(echo, code, message)
    }

    /// The JSON text: `{orgId, code, message, data, extra}` in this order.
    pub fn to_json(&self) -> String {
        json!({
            "orgId": self.org_id,
            "code": self.code,
            "message": self.message,
            "data": self.data,
            "extra": self.extra,
        })
        .to_string()
    }
}

/// ybposd's JSON-RPC errors of `scan.wait` (local-api.md) → `code` and message.
fn daemon_error(code: i64, message: &str, data: &Value, config: &Config) -> (i64, String) {
    let kind = data.get("kind").and_then(Value::as_str).unwrap_or("");
    match kind {
        "scan_timeout" => {
            let ms = data
                .get("timeout_ms")
                .and_then(Value::as_u64)
                .or(config.timeout_ms)
                .unwrap_or(30_000);
            (
                codes::NO_SCAN,
                format!("未扫码：{} 秒内没有扫到医保码", ms.div_ceil(1000)),
            )
        }
        "not_medical_code" => {
            let what = match data.get("class").and_then(Value::as_str) {
                Some("wechat_pay") => "（扫到的是微信付款码）",
                Some("alipay") => "（扫到的是支付宝付款码）",
                Some("unionpay") => "（扫到的是银联付款码）",
                _ => "",
            };
            (
                codes::NOT_MEDICAL_CODE,
                format!("请出示医保码，不是付款码{what}"),
            )
        }
        "scanner_busy" => (
            codes::SCANNER_BUSY,
            "扫码枪正被另一个收款程序占用，请稍后重试".into(),
        ),
        "scanner_unavailable" => (
            codes::SCANNER_UNAVAILABLE,
            "扫码枪未连接或不可用，请检查扫码枪".into(),
        ),
        "gateway_unreachable" => (
            codes::GATEWAY_OFFLINE,
            "医保平台连接不上（网关离线），暂时无法解码，请稍后重试".into(),
        ),
        "gateway_rejected" => {
            let why = data
                .get("err_msg")
                .and_then(Value::as_str)
                .unwrap_or(message);
            (codes::GATEWAY_REJECTED, format!("医保平台拒绝：{why}"))
        }
        "decode_failed" => {
            // The platform's own words: 已使用 / 已过期 / 请使用医保电子凭证二维码.
            let why = data
                .get("message")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or("医保码无法解码，请患者刷新医保码后重试");
            (codes::DECODE_FAILED, why.to_string())
        }
        "overloaded" => (
            codes::OVERLOADED,
            "ybposd 繁忙（连接过多），请稍后重试".into(),
        ),
        "invalid_params" => (codes::BAD_INPUT, format!("ybposd 拒绝了参数：{message}")),
        _ => (code, format!("ybposd 错误 {code}：{message}")),
    }
}

/// A decode value as the SDK's text: strings as they are, numbers as digits,
/// absent or null as `""`.
fn text_of(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The bytes to write for `answer` into a buffer of `limit` bytes (the
/// terminator included), and the `code` of what is written. Never longer
/// than `limit - 1`: an answer that does not fit becomes, in this order, the
/// same error without `extra`, without `orgId`; a success becomes a
/// [`codes::TOO_LARGE`] error (with `orgId`, then without); and last a fixed
/// ASCII error of 90 bytes. For `limit` ≥ 256 (the configurable minimum)
/// the result is always one of these answers.
pub fn fit(answer: &Answer, limit: usize, encoding: Encoding) -> (Vec<u8>, i64) {
    let room = limit.saturating_sub(1);
    let full = encode_json(answer.to_json(), encoding);
    if full.len() <= room {
        return (full, answer.code);
    }
    let mut candidates = Vec::new();
    let bare = |a: &Answer, keep_org: bool| Answer {
        org_id: if keep_org {
            a.org_id.clone()
        } else {
            String::new()
        },
        extra: Value::String(String::new()),
        ..a.clone()
    };
    if answer.code != codes::OK {
        candidates.push(bare(answer, true));
        candidates.push(bare(answer, false));
    }
    let too_large = Answer {
        code: codes::TOO_LARGE,
        message: format!(
            "应答有 {} 字节，超过输出缓冲区 {limit} 字节（含结尾 NUL）：请加大缓冲区并设置 YBPOS_COMPAT_OUTBUF",
            full.len() + 1
        ),
        data: None,
        ..answer.clone()
    };
    candidates.push(bare(&too_large, true));
    candidates.push(bare(&too_large, false));
    for c in &candidates {
        let bytes = encode_json(c.to_json(), encoding);
        if bytes.len() <= room {
            return (bytes, c.code);
        }
    }
    let last = format!(
        r#"{{"orgId":"","code":{},"message":"answer too large","data":null,"extra":""}}"#,
        codes::TOO_LARGE
    );
    if last.len() <= room {
        (last.into_bytes(), codes::TOO_LARGE)
    } else {
        (Vec::new(), codes::TOO_LARGE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Echo;
    use std::path::PathBuf;
    use std::time::Duration;

    /// The daemon's scan.wait result for the simulator's person 0 (golden transcript).
    fn identity() -> Value {
        serde_json::from_str(r#"{"session_id":"ses_1","expires_at":"2026-01-01T00:10:00+08:00","credential":{"mdtrt_cert_type":"01","mdtrt_cert_no":"421381ec0000000000000000000000000001"},"decode":{"ecToken":"421381ec0000000000000000000000000001","idNo":"421381198001011239","idType":"01","userName":"张三","insuOrg":"421381","ecIndexNo":"E0001","gender":"1","birthday":"1980.01.01","nationality":"01"},"person":{"baseinfo":{"psn_no":"42000000000000000001"},"insuinfo":[],"idetinfo":[]}}"#).unwrap()
    }

    fn echo() -> Echo {
        Echo {
            org_id: "H42130200001".into(),
            extra: json!({"trace": "abc"}),
        }
    }

    fn parsed(a: &Answer) -> Value {
        serde_json::from_str(&a.to_json()).unwrap()
    }

    #[test]
    fn success_is_the_sdk_shape_with_data_a_json_string() {
        let a = Answer::success(echo(), &identity());
        let text = a.to_json();
        assert!(
            text.starts_with(
                r#"{"orgId":"H42130200001","code":0,"message":"成功","data":"{\"idNo\":"#
            ),
            "{text}"
        );
        let v = parsed(&a);
        assert_eq!(v["extra"], json!({"trace": "abc"}));
        let data: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
        let keys: Vec<&str> = data
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, DATA_FIELDS);
        assert_eq!(data["idNo"], "421381198001011239");
        assert_eq!(data["userName"], "张三");
        assert_eq!(data["ecToken"], "421381ec0000000000000000000000000001");
        assert_eq!(data["insuOrg"], "421381");
        assert_eq!(data["birthday"], "1980.01.01");
        assert_eq!(data["email"], "");
        assert_eq!(data["extData"], "");
    }

    #[test]
    fn the_ec_token_is_the_credential_and_odd_values_become_text() {
        let mut r = identity();
        r["credential"]["mdtrt_cert_no"] = json!("TOKEN-FROM-CREDENTIAL");
        r["decode"]["gender"] = json!(1);
        r["decode"]["email"] = Value::Null;
        r["decode"]["extData"] = json!({"a": 1});
        let v = parsed(&Answer::success(Echo::default(), &r));
        let data: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
        assert_eq!(data["ecToken"], "TOKEN-FROM-CREDENTIAL");
        assert_eq!(data["gender"], "1");
        assert_eq!(data["email"], "");
        assert_eq!(data["extData"], r#"{"a":1}"#);
        assert_eq!(v["orgId"], "");
        assert_eq!(v["extra"], "");
    }

    fn daemon(code: i64, message: &str, data: Value) -> Answer {
        Answer::from_call_error(
            echo(),
            &CallError::Daemon {
                code,
                message: message.into(),
                data,
            },
            &Config::default(),
        )
    }

    #[test]
    fn every_error_in_chinese_with_data_null() {
        let cases = [
            (
                daemon(
                    1001,
                    "nothing was scanned within 30000 ms",
                    json!({"kind":"scan_timeout","timeout_ms":30000}),
                ),
                codes::NO_SCAN,
                "30 秒内没有扫到医保码",
            ),
            (
                daemon(
                    1002,
                    "这是微信付款码…",
                    json!({"kind":"not_medical_code","class":"wechat_pay"}),
                ),
                codes::NOT_MEDICAL_CODE,
                "请出示医保码，不是付款码（扫到的是微信付款码）",
            ),
            (
                daemon(
                    1003,
                    "another wait holds scanner",
                    json!({"kind":"scanner_busy","scanner":"counter"}),
                ),
                codes::SCANNER_BUSY,
                "扫码枪正被另一个收款程序占用",
            ),
            (
                daemon(
                    1004,
                    "scanner absent",
                    json!({"kind":"scanner_unavailable"}),
                ),
                codes::SCANNER_UNAVAILABLE,
                "扫码枪未连接",
            ),
            (
                daemon(
                    2001,
                    "the gateway could not be reached",
                    json!({"kind":"gateway_unreachable"}),
                ),
                codes::GATEWAY_OFFLINE,
                "网关离线",
            ),
            (
                daemon(
                    2002,
                    "x",
                    json!({"kind":"gateway_rejected","infcode":-1,"err_msg":"人员不存在"}),
                ),
                codes::GATEWAY_REJECTED,
                "医保平台拒绝：人员不存在",
            ),
            (
                daemon(
                    2004,
                    "x",
                    json!({"kind":"decode_failed","code":500161,"message":"医保电子凭证二维码已使用，请刷新后重试"}),
                ),
                codes::DECODE_FAILED,
                "二维码已使用",
            ),
            (
                daemon(
                    2004,
                    "x",
                    json!({"kind":"decode_failed","code":500160,"message":"医保电子凭证二维码已过期，请刷新后重试"}),
                ),
                codes::DECODE_FAILED,
                "二维码已过期",
            ),
            (
                daemon(5001, "too many", json!({"kind":"overloaded"})),
                codes::OVERLOADED,
                "繁忙",
            ),
            (
                daemon(-32603, "boom", json!({"kind":"internal"})),
                -32603,
                "ybposd 错误 -32603：boom",
            ),
            (
                Answer::from_call_error(
                    echo(),
                    &CallError::NotRunning {
                        socket: PathBuf::from("/run/ybpos/api.sock"),
                        error: std::io::Error::from(std::io::ErrorKind::NotFound),
                    },
                    &Config::default(),
                ),
                codes::DAEMON_NOT_RUNNING,
                "ybposd 服务未运行（无法连接 /run/ybpos/api.sock）",
            ),
            (
                Answer::from_call_error(echo(), &CallError::Lost, &Config::default()),
                codes::DAEMON_LOST,
                "断开",
            ),
            (
                Answer::from_call_error(
                    echo(),
                    &CallError::NoAnswer(Duration::from_secs(90)),
                    &Config::default(),
                ),
                codes::DAEMON_ERROR,
                "90 秒内应答",
            ),
            (
                Answer::from_call_error(
                    echo(),
                    &CallError::Denied {
                        socket: PathBuf::from("/s"),
                    },
                    &Config::default(),
                ),
                codes::ACCESS_DENIED,
                "ybpos 组",
            ),
        ];
        for (a, code, text) in cases {
            let v = parsed(&a);
            assert_eq!(v["code"], code, "{v}");
            assert!(v["message"].as_str().unwrap().contains(text), "{v}");
            assert_eq!(v["data"], Value::Null);
            assert_eq!(v["orgId"], "H42130200001");
            assert_eq!(v["extra"], json!({"trace": "abc"}));
        }
        // Alipay and a scan that is no payment code at all.
        let a = daemon(
            1002,
            "",
            json!({"kind":"not_medical_code","class":"alipay"}),
        );
        assert!(a.message.ends_with("（扫到的是支付宝付款码）"));
        let a = daemon(1002, "", json!({"kind":"not_medical_code","class":"other"}));
        assert_eq!(a.message, "请出示医保码，不是付款码");
    }

    #[test]
    fn what_fits_is_written_as_it_is() {
        for enc in [Encoding::Utf8, Encoding::Gbk] {
            let a = Answer::success(echo(), &identity());
            let (bytes, code) = fit(&a, 4096, enc);
            assert_eq!(code, 0);
            assert_eq!(bytes, encode_json(a.to_json(), enc));
        }
        // Exactly room + 1 = limit: fits; one byte less: does not.
        let a = Answer::success(echo(), &identity());
        let n = a.to_json().len();
        assert_eq!(fit(&a, n + 1, Encoding::Utf8).1, 0);
        assert_eq!(fit(&a, n, Encoding::Utf8).1, codes::TOO_LARGE);
    }

    #[test]
    fn what_does_not_fit_becomes_an_error_that_does_for_every_limit() {
        let big_extra = Echo {
            org_id: "O".repeat(300),
            extra: json!("x".repeat(5000)),
        };
        let answers = [
            Answer::success(echo(), &identity()),
            Answer::success(big_extra.clone(), &identity()),
            Answer::error(
                big_extra.clone(),
                codes::BAD_INPUT,
                "入参无效：缺少 data 对象".into(),
            ),
            Answer::error(big_extra, codes::UNSUPPORTED, "不支持".repeat(200)),
        ];
        for a in &answers {
            for enc in [Encoding::Utf8, Encoding::Gbk] {
                for limit in (0..=700)
                    .step_by(11)
                    .chain([255, 256, 257, 4095, 4096, 4097, 20480])
                {
                    let (bytes, code) = fit(a, limit, enc);
                    assert!(bytes.len() < limit.max(1), "{limit} {enc:?}");
                    if limit >= crate::config::MIN_OUTBUF {
                        assert!(!bytes.is_empty(), "{limit}");
                        let text = match enc {
                            Encoding::Utf8 => String::from_utf8(bytes.clone()).unwrap(),
                            Encoding::Gbk => encoding_rs::GBK
                                .decode_without_bom_handling_and_without_replacement(&bytes)
                                .unwrap()
                                .into_owned(),
                        };
                        let v: Value = serde_json::from_str(&text).unwrap();
                        assert_eq!(v["code"], code);
                        assert!(v["message"].is_string());
                        if code == codes::OK {
                            assert!(v["data"].is_string());
                        } else {
                            assert!(v["data"].is_null());
                        }
                    }
                }
            }
        }
        // An error keeps its own code and message, losing extra first.
        let (bytes, code) = fit(&answers[2], 4096, Encoding::Utf8);
        assert_eq!(code, codes::BAD_INPUT);
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["extra"], "");
        assert_eq!(v["orgId"].as_str().unwrap().len(), 300);
        // A success that does not fit says why, with the sizes.
        let (bytes, code) = fit(&answers[1], 4096, Encoding::Utf8);
        assert_eq!(code, codes::TOO_LARGE);
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        let m = v["message"].as_str().unwrap();
        assert!(m.contains("超过输出缓冲区 4096 字节"), "{m}");
        assert!(m.contains("YBPOS_COMPAT_OUTBUF"));
    }
}
