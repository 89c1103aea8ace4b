//! The C ABI: pointers in, pointers out, nothing else. Every decision is
//! made by the safe [`crate::transact`]; this module reads the caller's
//! string (bounded), writes the reply (whose length `transact` has already
//! bounded by the configured buffer size), and turns a panic into an error
//! answer instead of unwinding into C.

use std::ffi::{CStr, c_char, c_long};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::config::Config;
use crate::request::InputError;
use crate::{Reply, internal_error_reply, transact};

/// `NationEcTrans`'s status when an answer (success or error) is in the buffer.
const STATUS_ANSWERED: &CStr = c"0000";
/// `NationEcTrans`'s status when the output pointer was NULL (nothing written).
const STATUS_NO_OUTPUT: &CStr = c"-1";
/// `EcQuery`'s value when the output pointer was NULL (nothing written).
const ECQUERY_NO_OUTPUT: c_long = -1;
/// The longest input read: the daemon's own request limit.
pub const MAX_INPUT: usize = 1 << 20;

/// The NHSA SDK's entry point: reads the next 医保码 from the scanner (via
/// ybposd) and writes the SDK's JSON answer into `poutdata`.
///
/// `url` is accepted and ignored (ybposd owns the gateway) and may be NULL.
/// The answer is at most `YBPOS_COMPAT_OUTBUF` (default 4096) bytes with its
/// terminator. Returns `"0000"` when an answer — success or error, see its
/// `code` — was written; `"-1"` when `poutdata` is NULL. The returned string
/// is static: never free it.
///
/// # Safety
/// `pindata` is NULL or a NUL-terminated string; `poutdata` is NULL or
/// points to a writable buffer of at least `YBPOS_COMPAT_OUTBUF` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn NationEcTrans(
    url: *const c_char,
    pindata: *const c_char,
    poutdata: *mut c_char,
) -> *const c_char {
    let _ = url;
    if poutdata.is_null() {
        return STATUS_NO_OUTPUT.as_ptr();
    }
    // SAFETY: the caller passes NULL or a NUL-terminated string (the SDK's
    // contract); `read_input` reads no further than its terminator and at
    // most MAX_INPUT + 1 bytes.
    let input = unsafe { read_input(pindata) };
    let reply = call(input);
    // SAFETY: `poutdata` is non-NULL and, by the documented contract, holds
    // `YBPOS_COMPAT_OUTBUF` bytes; `reply.bytes` is shorter than that.
    unsafe { write_output(poutdata, &reply.bytes) };
    STATUS_ANSWERED.as_ptr()
}

/// Jiangsu's `HeaSecReadInfo.dll` entry point: the same call; returns the
/// answer's `code` (0 success, -2 no scan, otherwise the error in the
/// answer), or -1 when `pOutData` is NULL (nothing written).
///
/// # Safety
/// As [`NationEcTrans`]: `pInData` NULL or NUL-terminated (only read),
/// `pOutData` NULL or a writable buffer of `YBPOS_COMPAT_OUTBUF` bytes (set
/// it to 8192 for Jiangsu's recommended buffer).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn EcQuery(pInData: *const c_char, pOutData: *mut c_char) -> c_long {
    if pOutData.is_null() {
        return ECQUERY_NO_OUTPUT;
    }
    // SAFETY: as in NationEcTrans: NULL or NUL-terminated, read bounded.
    let input = unsafe { read_input(pInData) };
    let reply = call(input);
    // SAFETY: as in NationEcTrans: non-NULL, `reply.bytes` shorter than the
    // configured buffer.
    unsafe { write_output(pOutData, &reply.bytes) };
    c_long::try_from(reply.code).unwrap_or(c_long::MIN)
}

/// The safe call, with a panic caught (it must not unwind into C).
fn call(input: Result<&[u8], InputError>) -> Reply {
    let config = Config::from_env();
    catch_unwind(AssertUnwindSafe(|| transact(&config, input)))
        .unwrap_or_else(|_| internal_error_reply(&config))
}

/// The caller's string up to its terminator, at most [`MAX_INPUT`] bytes.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that stays valid and
/// unchanged for the call.
unsafe fn read_input<'a>(p: *const c_char) -> Result<&'a [u8], InputError> {
    if p.is_null() {
        return Err(InputError::Null);
    }
    for n in 0..=MAX_INPUT {
        // SAFETY: bytes 0..=n lie within the string: none of 0..n was its
        // terminator, so byte n is at most the terminator itself.
        if unsafe { *p.add(n) } == 0 {
            // SAFETY: the `n` bytes before the terminator are the string.
            return Ok(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), n) });
        }
    }
    Err(InputError::TooLong(MAX_INPUT))
}

/// Writes `bytes` and a terminator at `out`.
///
/// # Safety
/// `out` points to at least `bytes.len() + 1` writable bytes that do not
/// overlap `bytes`.
unsafe fn write_output(out: *mut c_char, bytes: &[u8]) {
    // SAFETY: the caller guarantees room for bytes.len() + 1 bytes; `bytes`
    // is our own Vec, so the regions cannot overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.cast::<u8>(), bytes.len());
        *out.add(bytes.len()) = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::codes;
    use serde_json::Value;

    const CANARY: u8 = 0xAB;

    /// A 4096-byte buffer followed by 64 canary bytes.
    fn buffer() -> Vec<u8> {
        vec![CANARY; 4096 + 64]
    }

    fn answer_in(buf: &[u8]) -> Value {
        assert!(
            buf[4096..].iter().all(|&b| b == CANARY),
            "canary overwritten"
        );
        let s = CStr::from_bytes_until_nul(&buf[..4096]).expect("terminated within 4096");
        serde_json::from_slice(s.to_bytes()).expect("JSON")
    }

    #[test]
    fn null_pointers_answer_or_say_nothing_was_written() {
        let mut buf = buffer();
        // SAFETY: NULL input and a 4096-byte buffer.
        let st =
            unsafe { NationEcTrans(std::ptr::null(), std::ptr::null(), buf.as_mut_ptr().cast()) };
        // SAFETY: a static NUL-terminated string.
        assert_eq!(unsafe { CStr::from_ptr(st) }, c"0000");
        let v = answer_in(&buf);
        assert_eq!(v["code"], codes::BAD_INPUT);
        assert!(v["message"].as_str().unwrap().contains("NULL"));

        // SAFETY: a valid input and a NULL output.
        let st = unsafe { NationEcTrans(c"u".as_ptr(), c"{}".as_ptr(), std::ptr::null_mut()) };
        // SAFETY: a static NUL-terminated string.
        assert_eq!(unsafe { CStr::from_ptr(st) }, c"-1");
        // SAFETY: NULL output.
        assert_eq!(unsafe { EcQuery(c"{}".as_ptr(), std::ptr::null_mut()) }, -1);
        let mut buf = buffer();
        // SAFETY: NULL input and a 4096-byte buffer.
        let rc = unsafe { EcQuery(std::ptr::null(), buf.as_mut_ptr().cast()) };
        assert_eq!(rc, codes::BAD_INPUT as c_long);
        assert_eq!(answer_in(&buf)["code"], codes::BAD_INPUT);
    }

    #[test]
    fn bad_json_and_unsupported_trans_types_answer_without_the_daemon() {
        for (input, code) in [
            (c"{not json".as_ptr(), codes::BAD_INPUT),
            (c"".as_ptr(), codes::BAD_INPUT),
            (
                c"{\"transType\":\"cn.nhsa.cert.get\",\"data\":{}}".as_ptr(),
                codes::UNSUPPORTED,
            ),
        ] {
            let mut buf = buffer();
            // SAFETY: NUL-terminated input, a 4096-byte buffer.
            let rc = unsafe { EcQuery(input, buf.as_mut_ptr().cast()) };
            assert_eq!(rc, code as c_long);
            assert_eq!(answer_in(&buf)["code"], code);
        }
    }

    #[test]
    fn input_is_read_no_further_than_the_limit() {
        let mut long = vec![b' '; MAX_INPUT + 10];
        long.push(0);
        // SAFETY: a NUL-terminated string of MAX_INPUT + 10 bytes.
        let r = unsafe { read_input(long.as_ptr().cast()) };
        assert_eq!(r, Err(InputError::TooLong(MAX_INPUT)));
        let exact = {
            let mut v = vec![b' '; MAX_INPUT];
            v.push(0);
            v
        };
        // SAFETY: NUL-terminated.
        assert_eq!(
            unsafe { read_input(exact.as_ptr().cast()) }.unwrap().len(),
            MAX_INPUT
        );
        // SAFETY: NUL-terminated.
        assert_eq!(unsafe { read_input(c"abc".as_ptr()) }, Ok(&b"abc"[..]));
    }
}
