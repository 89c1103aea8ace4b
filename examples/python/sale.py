#!/usr/bin/env python3
"""A pharmacy sale against ybposd, the way a POS does it — standard library only.

    python3 examples/python/sale.py [--socket /run/ybpos/api.sock] [--keep]

1. waits for the patient's 医保码 on the cashier's scanner (scan.wait),
   showing the hint when a payment code is scanned instead;
2. pre-settles (2101) and settles (2102) two lines, and prints the receipt
   with the split: fund / personal account / cash;
3. cancels the settlement (2103) — a POS does this when the patient returns
   the goods; --keep leaves the sale in place.

Money stays decimal text (never float). Try it against `ybposd --demo`:
it prints the socket; "scan" with Enter in the demo's terminal.
"""

import argparse
import itertools
import json
import socket
import sys
import time
from decimal import Decimal


class Ybpos:
    """One connection to ybposd's Unix socket: one JSON-RPC request per line."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.file = self.sock.makefile("rw", encoding="utf-8", newline="\n")
        self.ids = itertools.count(1)

    def call(self, method, **params):
        """The result, or raises RpcError with the daemon's error object."""
        rid = next(self.ids)
        self.file.write(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}) + "\n")
        self.file.flush()
        for line in self.file:
            # Amounts stay exact: numbers with a fraction become Decimal.
            msg = json.loads(line, parse_float=Decimal)
            if msg.get("id") == rid:
                if "error" in msg:
                    raise RpcError(msg["error"])
                return msg["result"]
            # Anything else is an event notification (not subscribed here).
        raise ConnectionError("ybposd closed the connection")


class RpcError(Exception):
    """An error answer: .code, .message, .data (with data["kind"])."""

    def __init__(self, err):
        super().__init__(f'{err["code"]} {err["message"]}')
        self.code, self.message, self.data = err["code"], err["message"], err.get("data", {})


def masked(s):
    """4213**********1239: never show a whole ID number."""
    return s[:4] + "*" * max(len(s) - 8, 0) + s[-4:] if len(s) > 8 else "*" * len(s)


def wait_for_patient(api):
    print("Waiting for the patient's 医保码 …", flush=True)
    while True:
        try:
            return api.call("scan.wait", business_type="02121", timeout_ms=60000)
        except RpcError as e:
            if e.code == 1002:  # a payment code: say so, and wait again
                print(f"Not a 医保码: {e.message}", flush=True)
            elif e.code == 1001:  # nothing scanned: keep waiting
                print("Still waiting …", flush=True)
            else:
                raise


def receipt(title, setl):
    print(f"--- {title} ---")
    print(f"  settlement  {setl.get('setl_id', '(pre-settlement)')}")
    print(f"  total       {setl['medfee_sumamt']}")
    print(f"  fund        {setl['fund_pay_sumamt']}")
    print(f"  account     {setl['acct_pay']}")
    print(f"  cash        {setl['psn_cash_pay']}")
    print(f"  balance     {setl['balc']}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", default="/run/ybpos/api.sock")
    ap.add_argument("--keep", action="store_true", help="do not cancel the sale")
    args = ap.parse_args()
    api = Ybpos(args.socket)

    who = wait_for_patient(api)
    base = who["person"]["baseinfo"]
    print(f"Patient: {base['psn_name']} {masked(base['certno'])}", flush=True)

    # The cart: prices as decimal text; the total is their exact sum.
    lines = [("XA01", "YP-0001", 2, "12.50"), ("XB02", "YP-0002", 1, "18.00")]  # platform code, our code
    ref = f"PY-{time.strftime('%Y%m%d%H%M%S')}"
    detail, total = [], Decimal("0")
    for n, (code, own, cnt, price) in enumerate(lines, 1):
        amount = Decimal(price) * cnt
        total += amount
        detail.append({"feedetl_sn": f"{ref}-{n}", "med_list_codg": code, "medins_list_codg": own,
                       "cnt": cnt, "pric": price, "det_item_fee_sumamt": str(amount)})
    sale = {"druginfo": {"begntime": time.strftime("%Y-%m-%d %H:%M:%S"), "medfee_sumamt": str(total),
                         "acct_used_flag": "1", "med_type": "41"},
            "drugdetail": detail}

    pre = api.call("txn.submit", client_ref=f"{ref}-2101", infno="2101", session_id=who["session_id"], input=sale)
    receipt("pre-settlement (2101)", pre["output"]["setlinfo"])

    # client_ref is the idempotency key: after a crash, resubmit the same one.
    done = api.call("txn.submit", client_ref=f"{ref}-2102", infno="2102", session_id=who["session_id"], input=sale)
    if done["state"] != "succeeded":
        # unknown / reversing: ybposd undoes it by itself; follow with txn.get.
        print(f"Settlement {done['txn_id']} is {done['state']}: {done['error']}", file=sys.stderr)
        return 1
    setl = done["output"]["setlinfo"]
    receipt("receipt (2102)", setl)

    cancel_id = ""
    if not args.keep:
        undo = api.call("txn.submit", client_ref=f"{ref}-2103", infno="2103", session_id=who["session_id"],
                        input={"data": {"setl_id": setl["setl_id"], "mdtrt_id": setl["mdtrt_id"]}})
        if undo["state"] != "succeeded":
            print(f"Cancel {undo['txn_id']} is {undo['state']}: {undo['error']}", file=sys.stderr)
            return 1
        cancel_id = undo["output"]["setlinfo"]["setl_id"]
        receipt("cancelled (2103)", undo["output"]["setlinfo"])
    print(f"RESULT setl_id={setl['setl_id']} cancel_setl_id={cancel_id} total={total}", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ConnectionError, FileNotFoundError, PermissionError) as e:
        print(f"Cannot talk to ybposd ({e}): systemctl status ybposd", file=sys.stderr)
        sys.exit(3)
    except RpcError as e:
        print(f"ybposd said no: {e}", file=sys.stderr)
        sys.exit(1)
