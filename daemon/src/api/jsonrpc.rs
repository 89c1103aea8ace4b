//! JSON-RPC 2.0 framing: one request in, one response or notification out.

use serde_json::{Map, Value, json};

use super::error::ApiError;

/// A well-formed incoming request.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// `None` for a notification (no answer is sent).
    pub id: Option<Value>,
    /// Method name.
    pub method: String,
    /// Params object (empty when absent).
    pub params: Map<String, Value>,
}

/// A request that cannot be executed: the id to answer (null when unknown) and why.
pub type Bad = Box<(Value, ApiError)>;

/// Parses one message. `Err` carries the id (if it could be read) and the error.
pub fn parse(bytes: &[u8]) -> Result<Incoming, Bad> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| Box::new((Value::Null, ApiError::parse_error(e))))?;
    parse_value(v).map_err(Box::new)
}

/// Checks a parsed value is a JSON-RPC 2.0 request.
#[allow(clippy::result_large_err)]
fn parse_value(v: Value) -> Result<Incoming, (Value, ApiError)> {
    let Value::Object(mut m) = v else {
        let e = if v.is_array() {
            ApiError::invalid_request("batch requests are not supported; send one request per line")
        } else {
            ApiError::invalid_request("a request must be a JSON object")
        };
        return Err((Value::Null, e));
    };
    let id = m.remove("id");
    let id_for_err = match &id {
        Some(v @ (Value::Number(_) | Value::String(_) | Value::Null)) => v.clone(),
        _ => Value::Null,
    };
    if let Some(v) = &id
        && !matches!(v, Value::Number(_) | Value::String(_) | Value::Null)
    {
        return Err((
            Value::Null,
            ApiError::invalid_request("id must be a number, a string or null"),
        ));
    }
    if m.get("jsonrpc") != Some(&Value::String("2.0".into())) {
        return Err((
            id_for_err,
            ApiError::invalid_request("jsonrpc must be \"2.0\""),
        ));
    }
    let method = match m.remove("method") {
        Some(Value::String(s)) => s,
        _ => {
            return Err((
                id_for_err,
                ApiError::invalid_request("method must be a string"),
            ));
        }
    };
    let params = match m.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p,
        Some(_) => {
            return Err((
                id_for_err,
                ApiError::invalid_params("params", "must be an object"),
            ));
        }
    };
    Ok(Incoming { id, method, params })
}

/// A success response.
pub fn result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// An error response.
pub fn error(id: &Value, e: &ApiError) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": e.to_json()})
}

/// An event notification.
pub fn notification(params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": "event", "params": params})
}

#[cfg(test)]
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn good_and_bad_requests() {
        let ok = parse(br#"{"jsonrpc":"2.0","id":1,"method":"system.info"}"#).unwrap();
        assert_eq!(ok.id, Some(json!(1)));
        assert_eq!(ok.method, "system.info");
        let n = parse(br#"{"jsonrpc":"2.0","method":"x","params":{"a":1}}"#).unwrap();
        assert_eq!(n.id, None);
        assert_eq!(n.params["a"], 1);
        assert_eq!(parse(b"not json").unwrap_err().1.code, -32700);
        assert_eq!(parse(b"[]").unwrap_err().1.code, -32600);
        assert_eq!(
            *parse(br#"{"id":7,"method":"x"}"#).unwrap_err(),
            (
                json!(7),
                ApiError::invalid_request("jsonrpc must be \"2.0\"")
            )
        );
        assert_eq!(
            parse(br#"{"jsonrpc":"2.0","id":"a","method":3}"#)
                .unwrap_err()
                .0,
            json!("a")
        );
        assert_eq!(
            parse(br#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}"#)
                .unwrap_err()
                .1
                .code,
            -32602
        );
        assert_eq!(
            parse(br#"{"jsonrpc":"2.0","id":{},"method":"x"}"#)
                .unwrap_err()
                .1
                .code,
            -32600
        );
    }
}
