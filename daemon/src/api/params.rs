//! Reading params with errors that name the field (`invalid_params`, `data.field`).

use serde_json::{Map, Value};

use super::error::ApiError;

/// Borrowed params of one request.
#[derive(Debug)]
pub struct Params<'a>(pub &'a Map<String, Value>);

impl Params<'_> {
    /// A required string.
    pub fn str(&self, k: &str) -> Result<String, ApiError> {
        match self.0.get(k) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::String(_)) => Err(ApiError::invalid_params(k, "must not be empty")),
            Some(_) => Err(ApiError::invalid_params(k, "must be a string")),
            None => Err(ApiError::invalid_params(k, "is required")),
        }
    }

    /// An optional string.
    pub fn opt_str(&self, k: &str) -> Result<Option<String>, ApiError> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::invalid_params(k, "must be a string")),
        }
    }

    /// An optional non-negative integer.
    pub fn opt_u64(&self, k: &str) -> Result<Option<u64>, ApiError> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| ApiError::invalid_params(k, "must be a non-negative integer")),
            Some(_) => Err(ApiError::invalid_params(
                k,
                "must be a non-negative integer",
            )),
        }
    }

    /// An optional boolean (default false).
    pub fn flag(&self, k: &str) -> Result<bool, ApiError> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(ApiError::invalid_params(k, "must be true or false")),
        }
    }

    /// A required string of at most `max` characters.
    pub fn text(&self, k: &str, max: usize) -> Result<String, ApiError> {
        let s = self.str(k)?;
        if s.chars().count() > max {
            return Err(ApiError::invalid_params(
                k,
                format!("must be at most {max} characters"),
            ));
        }
        Ok(s)
    }

    /// A required object.
    pub fn object(&self, k: &str) -> Result<&Map<String, Value>, ApiError> {
        match self.0.get(k) {
            Some(Value::Object(m)) => Ok(m),
            Some(_) => Err(ApiError::invalid_params(k, "must be an object")),
            None => Err(ApiError::invalid_params(k, "is required")),
        }
    }

    /// A 5-digit 用码业务类型.
    pub fn business_type(&self) -> Result<String, ApiError> {
        let bt = self.str("business_type")?;
        if bt.len() != 5 || !bt.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::invalid_params(
                "business_type",
                "must be a 5-digit 用码业务类型, e.g. 02121 (pharmacy) or 01301 (settlement)",
            ));
        }
        Ok(bt)
    }
}
