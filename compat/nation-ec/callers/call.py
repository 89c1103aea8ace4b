#!/usr/bin/env python3
"""A Python caller of libNationECCode.so through ctypes, as an HIS script
would load the SDK. Used by the tests (tests/nation_ec.rs) and as an example.

    python3 call.py ./target/debug/libNationECCode.so nation '{"orgId":"H1","transType":"ec.query","data":{"businessType":"02121"}}'
    python3 call.py LIB ecquery JSON

The input is encoded, and the answer decoded (strictly), in the library's
encoding: GBK when YBPOS_COMPAT_ENCODING=gbk, else UTF-8. The buffer is
YBPOS_COMPAT_OUTBUF bytes (default 4096). Prints the status (NationEcTrans)
or return value (EcQuery), then the answer, in UTF-8.
"""
import ctypes
import os
import sys


def main():
    lib = ctypes.CDLL(sys.argv[1])
    lib.NationEcTrans.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char)]
    lib.NationEcTrans.restype = ctypes.c_char_p
    lib.EcQuery.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char)]
    lib.EcQuery.restype = ctypes.c_long
    gbk = os.environ.get("YBPOS_COMPAT_ENCODING", "").lower() == "gbk"
    encoding = "gbk" if gbk else "utf-8"
    out = ctypes.create_string_buffer(int(os.environ.get("YBPOS_COMPAT_OUTBUF") or 4096))
    mode = sys.argv[2]
    text = os.fsencode(sys.argv[3]).decode("utf-8")
    data = text.encode(encoding)
    if mode == "nation":
        status = lib.NationEcTrans(b"http://ignored", data, out).decode("ascii")
    elif mode == "ecquery":
        status = str(lib.EcQuery(data, out))
    else:
        sys.exit(f"unknown mode {mode}")
    answer = out.value.decode(encoding)
    sys.stdout.reconfigure(encoding="utf-8")
    print(status)
    print(answer)


if __name__ == "__main__":
    main()
