//! `libNationECCode.so`: the call shape of the NHSA SDK's `NationECCode.dll`
//! (`NationEcTrans(url, pindata, poutdata)`) and of Jiangsu's
//! `HeaSecReadInfo.dll` (`EcQuery(pInData, pOutData)`), backed by ybposd.
//!
//! An HIS written against the SDK changes one file name and nothing else:
//! each call connects to ybposd's Unix socket, runs `scan.wait` with the
//! request's `businessType`, and writes the person in the SDK's output shape
//! `{orgId, code, message, data, extra}` (`data` a JSON *string*).
//!
//! The C ABI lives in one small module (`ffi`), which only converts
//! pointers; everything else — reading the request, the call, mapping the
//! answer and its errors, encoding, fitting the caller's buffer — is safe
//! code here, tested with values:
//! - [`config`]: the environment (`YBPOS_SOCKET`, `YBPOS_COMPAT_*`), read at
//!   every call; the only state there is.
//! - [`text`]: UTF-8 or GBK in and out.
//! - [`request`]: the SDK's input envelope → a scan request (or why not).
//! - [`client`]: one `scan.wait` on the socket, blocking, with a deadline.
//! - [`answer`]: the SDK's output envelope, the error codes and their
//!   Chinese messages, and [`answer::fit`], which never lets an answer
//!   outgrow the caller's buffer.
//!
//! No logging: nothing personal can leak from here.

// The lib is named after the file HIS programs load (`libNationECCode.so`),
// and the exported C functions have the SDK's names; rustc's snake-case
// check of the crate name can only be allowed crate-wide.
#![allow(non_snake_case)]

pub mod answer;
pub mod client;
pub mod config;
pub mod request;
pub mod text;

#[allow(unsafe_code)]
mod ffi;

pub use answer::{Answer, codes};
pub use config::{Config, Encoding};
pub use ffi::{EcQuery, NationEcTrans};
pub use request::InputError;

/// What one call writes: the encoded answer (no terminator; always shorter
/// than the configured buffer) and its `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The answer in the configured encoding, at most `outbuf - 1` bytes.
    pub bytes: Vec<u8>,
    /// The answer's `code` (0 success, `-2` no scan, see [`codes`]).
    pub code: i64,
}

/// One SDK call: `input` is the caller's string (its bytes, without the
/// terminator) or why it could not be read. Never panics on any input.
pub fn transact(config: &Config, input: Result<&[u8], InputError>) -> Reply {
    let answer = answer_for(config, input);
    let (bytes, code) = answer::fit(&answer, config.outbuf, config.encoding);
    Reply { bytes, code }
}

fn answer_for(config: &Config, input: Result<&[u8], InputError>) -> Answer {
    if let Some(problem) = &config.problem {
        return Answer::error(
            request::Echo::default(),
            codes::BAD_CONFIG,
            problem.message(),
        );
    }
    let text = match input.and_then(|bytes| text::decode(bytes, config.encoding)) {
        Ok(t) => t,
        Err(e) => return Answer::error(request::Echo::default(), e.code(), e.message()),
    };
    let (echo, parsed) = request::parse(&text);
    let req = match parsed {
        Ok(r) => r,
        Err(e) => return Answer::error(echo, e.code(), e.message()),
    };
    match client::scan_wait(config, &req.business_type) {
        Ok(result) => Answer::success(echo, &result),
        Err(e) => Answer::from_call_error(echo, &e, config),
    }
}

/// The answer written when the library itself failed (a caught panic):
/// ASCII and Chinese, short enough for any buffer the config allows.
pub fn internal_error_reply(config: &Config) -> Reply {
    let answer = Answer::error(
        request::Echo::default(),
        codes::INTERNAL,
        "ybpos 兼容库内部错误，请重试；若反复出现请联系 ybpos 维护人员".into(),
    );
    let (bytes, code) = answer::fit(&answer, config.outbuf, config.encoding);
    Reply { bytes, code }
}
