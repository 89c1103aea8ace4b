/*
 * nation_ec.h — libNationECCode.so, ybpos's drop-in for the NHSA SDK's
 * NationECCode.dll (and Jiangsu's HeaSecReadInfo.dll EcQuery).
 *
 * Each call waits for the next 医保码 on the cashier's scanner (through
 * ybposd's scan.wait), has it decoded at the gateway, and writes the SDK's
 * JSON answer into the caller's buffer:
 *
 *   {"orgId":"…","code":0,"message":"成功","data":"{\"idNo\":…}","extra":…}
 *
 * `data` is a JSON *string* holding idNo, idType, userName, ecToken,
 * insuOrg, ecIndexNo, gender, birthday, nationality, email, extData; on an
 * error `code` is non-zero, `message` says why in Chinese and `data` is
 * null. code -2: nothing was scanned in time (kiosk pages pass over it).
 * The other codes are listed in the README ("Migrating from
 * NationECCode.dll").
 *
 * Input: {"orgId":"…","transType":"ec.query","data":{"orgId":"…",
 * "businessType":"02121","operatorId":"…","operatorName":"…","officeId":"…",
 * "officeName":"…","deviceType":""},"extra":…}. `cn.nhsa.qrcode.get` is
 * served the same way; other transTypes (cn.nhsa.cert.get, …) answer
 * code 9004 "不支持的交易类型".
 *
 * Buffers: the answer, with its terminating NUL, never exceeds
 * YBPOS_COMPAT_OUTBUF bytes (default 4096). Allocate at least that much;
 * with a larger buffer (the SDK samples use 20480), set the variable to its
 * size. An answer that would not fit is replaced by an error answer that
 * does (code 9005).
 *
 * Strings are UTF-8, or GBK with YBPOS_COMPAT_ENCODING=gbk. ybposd's socket
 * is YBPOS_SOCKET (default /run/ybpos/api.sock). The environment is read at
 * every call. Calls block until the scan (YBPOS_COMPAT_TIMEOUT_MS, default
 * the daemon's 30 s) and may be made from several threads at once; only one
 * wait holds a scanner at a time (code 1003 for the others).
 *
 * On Windows the SDK's functions are __stdcall; on Linux there is one C
 * calling convention, so this header declares plain C functions.
 */
#ifndef NATION_EC_H
#define NATION_EC_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The NHSA SDK's call. `url` (the provincial e-voucher centre in the SDK)
 * is accepted and ignored — ybposd owns the gateway — and may be NULL.
 * `pindata`: NUL-terminated input JSON. `poutdata`: the answer buffer.
 * Returns a static string, never to be freed: "0000" when an answer
 * (success or error: read its "code") is in `poutdata`, "-1" when
 * `poutdata` is NULL and nothing was written.
 */
const char *NationEcTrans(const char *url, const char *pindata, char *poutdata);

/*
 * Jiangsu's call (HeaSecReadInfo.dll): the same input and answer. Returns
 * the answer's code: 0 success, -2 nothing scanned, otherwise the error in
 * the answer; -1 when `pOutData` is NULL and nothing was written. Jiangsu
 * recommends an 8192-byte buffer: set YBPOS_COMPAT_OUTBUF=8192 with it.
 * (`pInData` is only read; the SDK declares it `char *`.)
 */
long EcQuery(const char *pInData, char *pOutData);

#ifdef __cplusplus
}
#endif

#endif /* NATION_EC_H */
