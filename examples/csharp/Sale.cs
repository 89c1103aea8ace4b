// A pharmacy sale against ybposd from C#, with nothing but the base class
// library of .NET Framework 4.x (what most HIS in China are written in) —
// so it builds with Mono's mcs on Linux, csc on Windows, or .NET 6+.
// It uses the loopback HTTP API (POST /v1/rpc, one request per POST, the
// token from api.token_file), which every .NET has; money stays decimal.
//
//   mcs -out:Sale.exe examples/csharp/Sale.cs && mono Sale.exe 127.0.0.1:17480 /etc/ybpos/api-token
//
// Waits for the patient's 医保码 (scan.wait: the POST returns when scanned;
// a payment code gets its hint), pre-settles (2101), settles (2102), prints
// the receipt with the split, and cancels (2103).

using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Net;
using System.Text;

public static class Sale
{
    /// <summary>An error answer from ybposd: code, message, data.</summary>
    public sealed class RpcError : Exception
    {
        public readonly long Code;
        public RpcError(Dictionary<string, object> e) : base((string)e["message"])
        {
            Code = (long)(decimal)e["code"];
        }
    }

    static string api, token;
    static long nextId = 1;

    static Dictionary<string, object> Call(string method, Dictionary<string, object> p, int timeoutMs)
    {
        var req = (HttpWebRequest)WebRequest.Create("http://" + api + "/v1/rpc");
        req.Method = "POST";
        req.ContentType = "application/json";
        req.Headers["Authorization"] = "Bearer " + token;
        req.Timeout = timeoutMs;
        req.ReadWriteTimeout = timeoutMs;
        var body = Encoding.UTF8.GetBytes(Json.Write(Obj("jsonrpc", "2.0", "id", nextId++, "method", method, "params", p)));
        using (var s = req.GetRequestStream()) s.Write(body, 0, body.Length);
        using (var resp = (HttpWebResponse)req.GetResponse())
        using (var r = new StreamReader(resp.GetResponseStream(), Encoding.UTF8))
        {
            var msg = (Dictionary<string, object>)Json.Parse(r.ReadToEnd());
            if (msg.ContainsKey("error")) throw new RpcError((Dictionary<string, object>)msg["error"]);
            return (Dictionary<string, object>)msg["result"];
        }
    }

    static Dictionary<string, object> Obj(params object[] kv)
    {
        var d = new Dictionary<string, object>();
        for (int i = 0; i < kv.Length; i += 2) d[(string)kv[i]] = kv[i + 1];
        return d;
    }

    static Dictionary<string, object> At(Dictionary<string, object> d, string k)
    {
        object v;
        return d.TryGetValue(k, out v) ? v as Dictionary<string, object> ?? new Dictionary<string, object>() : new Dictionary<string, object>();
    }

    static string Masked(string s)
    {
        return s.Length <= 8 ? new string('*', s.Length) : s.Substring(0, 4) + new string('*', s.Length - 8) + s.Substring(s.Length - 4);
    }

    static string Money(object v)
    {
        return v is decimal ? ((decimal)v).ToString(CultureInfo.InvariantCulture) : Convert.ToString(v, CultureInfo.InvariantCulture);
    }

    static void Receipt(string title, Dictionary<string, object> s)
    {
        Console.WriteLine("--- " + title + " ---");
        Console.WriteLine("  settlement  " + (s.ContainsKey("setl_id") ? s["setl_id"] : "(pre-settlement)"));
        Console.WriteLine("  total       " + Money(s["medfee_sumamt"]));
        Console.WriteLine("  fund        " + Money(s["fund_pay_sumamt"]));
        Console.WriteLine("  account     " + Money(s["acct_pay"]));
        Console.WriteLine("  cash        " + Money(s["psn_cash_pay"]));
        Console.WriteLine("  balance     " + Money(s["balc"]));
    }

    public static int Main(string[] args)
    {
        Console.OutputEncoding = new UTF8Encoding(false);
        api = args.Length > 0 ? args[0] : "127.0.0.1:17480";
        token = File.ReadAllText(args.Length > 1 ? args[1] : "/etc/ybpos/api-token").Trim();
        try
        {
            Dictionary<string, object> who = null;
            Console.WriteLine("Waiting for the patient's 医保码 …");
            while (who == null)
            {
                try { who = Call("scan.wait", Obj("business_type", "02121", "timeout_ms", 60000L), 90000); }
                catch (RpcError e)
                {
                    if (e.Code == 1002) Console.WriteLine("Not a 医保码: " + e.Message);
                    else if (e.Code == 1001) Console.WriteLine("Still waiting …");
                    else throw;
                }
            }
            var b = At(At(who, "person"), "baseinfo");
            Console.WriteLine("Patient: " + b["psn_name"] + " " + Masked((string)b["certno"]));
            var session = (string)who["session_id"];

            var reference = "CS-" + DateTime.Now.ToString("yyyyMMddHHmmss");
            var lines = new[] { new { Code = "XB02", Own = "YP-0002", Cnt = 2, Price = "18.00" }, new { Code = "XC03", Own = "YP-0003", Cnt = 1, Price = "6.80" } };
            var detail = new List<object>();
            decimal total = 0m;
            for (int i = 0; i < lines.Length; i++)
            {
                var amount = decimal.Parse(lines[i].Price, CultureInfo.InvariantCulture) * lines[i].Cnt;
                total += amount;
                detail.Add(Obj("feedetl_sn", reference + "-" + (i + 1), "med_list_codg", lines[i].Code, "medins_list_codg", lines[i].Own,
                    "cnt", (long)lines[i].Cnt, "pric", lines[i].Price, "det_item_fee_sumamt", amount.ToString("0.00", CultureInfo.InvariantCulture)));
            }
            var sale = Obj("druginfo", Obj("begntime", DateTime.Now.ToString("yyyy-MM-dd HH:mm:ss"),
                    "medfee_sumamt", total.ToString("0.00", CultureInfo.InvariantCulture), "acct_used_flag", "1", "med_type", "41"),
                "drugdetail", detail);

            var pre = Call("txn.submit", Obj("client_ref", reference + "-2101", "infno", "2101", "session_id", session, "input", sale), 60000);
            Receipt("pre-settlement (2101)", At(At(pre, "output"), "setlinfo"));

            var done = Call("txn.submit", Obj("client_ref", reference + "-2102", "infno", "2102", "session_id", session, "input", sale), 60000);
            if ((string)done["state"] != "succeeded")
            {
                // unknown / reversing: ybposd undoes it by itself; follow it with txn.get.
                Console.Error.WriteLine("Settlement " + done["txn_id"] + " is " + done["state"]);
                return 1;
            }
            var setl = At(At(done, "output"), "setlinfo");
            Receipt("receipt (2102)", setl);

            var undo = Call("txn.submit", Obj("client_ref", reference + "-2103", "infno", "2103", "session_id", session,
                "input", Obj("data", Obj("setl_id", setl["setl_id"], "mdtrt_id", setl["mdtrt_id"]))), 60000);
            if ((string)undo["state"] != "succeeded")
            {
                Console.Error.WriteLine("Cancel " + undo["txn_id"] + " is " + undo["state"]);
                return 1;
            }
            var cancelled = At(At(undo, "output"), "setlinfo");
            Receipt("cancelled (2103)", cancelled);
            Console.WriteLine("RESULT setl_id=" + setl["setl_id"] + " cancel_setl_id=" + cancelled["setl_id"] + " total=" + total.ToString("0.00", CultureInfo.InvariantCulture));
            return 0;
        }
        catch (WebException e)
        {
            Console.Error.WriteLine("Cannot talk to ybposd (" + e.Message + "): systemctl status ybposd");
            return 3;
        }
        catch (RpcError e)
        {
            Console.Error.WriteLine("ybposd said no: " + e.Code + " " + e.Message);
            return 1;
        }
    }

    /// <summary>Just enough JSON: objects, arrays, strings, decimal numbers, booleans, null.</summary>
    static class Json
    {
        public static object Parse(string s) { int i = 0; var v = Value(s, ref i); return v; }

        static void Ws(string s, ref int i) { while (i < s.Length && char.IsWhiteSpace(s[i])) i++; }

        static object Value(string s, ref int i)
        {
            Ws(s, ref i);
            char c = s[i];
            if (c == '{')
            {
                var d = new Dictionary<string, object>(); i++; Ws(s, ref i);
                if (s[i] == '}') { i++; return d; }
                while (true)
                {
                    Ws(s, ref i); var k = Str(s, ref i); Ws(s, ref i); i++; // ':'
                    d[k] = Value(s, ref i); Ws(s, ref i);
                    if (s[i++] == ',') continue;
                    return d;
                }
            }
            if (c == '[')
            {
                var a = new List<object>(); i++; Ws(s, ref i);
                if (s[i] == ']') { i++; return a; }
                while (true)
                {
                    a.Add(Value(s, ref i)); Ws(s, ref i);
                    if (s[i++] == ',') continue;
                    return a;
                }
            }
            if (c == '"') return Str(s, ref i);
            if (string.CompareOrdinal(s, i, "true", 0, 4) == 0) { i += 4; return true; }
            if (string.CompareOrdinal(s, i, "false", 0, 5) == 0) { i += 5; return false; }
            if (string.CompareOrdinal(s, i, "null", 0, 4) == 0) { i += 4; return null; }
            int start = i;
            while (i < s.Length && "+-0123456789.eE".IndexOf(s[i]) >= 0) i++;
            return decimal.Parse(s.Substring(start, i - start), NumberStyles.Float, CultureInfo.InvariantCulture);
        }

        static string Str(string s, ref int i)
        {
            var b = new StringBuilder(); i++;
            while (true)
            {
                char c = s[i++];
                if (c == '"') return b.ToString();
                if (c != '\\') { b.Append(c); continue; }
                char e = s[i++];
                switch (e)
                {
                    case 'n': b.Append('\n'); break;
                    case 't': b.Append('\t'); break;
                    case 'r': b.Append('\r'); break;
                    case 'b': b.Append('\b'); break;
                    case 'f': b.Append('\f'); break;
                    case 'u': b.Append((char)Convert.ToInt32(s.Substring(i, 4), 16)); i += 4; break;
                    default: b.Append(e); break;
                }
            }
        }

        public static string Write(object v)
        {
            var b = new StringBuilder(); Write(b, v); return b.ToString();
        }

        static void Write(StringBuilder b, object v)
        {
            if (v == null) b.Append("null");
            else if (v is string) Quote(b, (string)v);
            else if (v is bool) b.Append((bool)v ? "true" : "false");
            else if (v is long || v is int) b.Append(Convert.ToString(v, CultureInfo.InvariantCulture));
            else if (v is decimal) b.Append(((decimal)v).ToString(CultureInfo.InvariantCulture));
            else if (v is Dictionary<string, object>)
            {
                b.Append('{'); bool first = true;
                foreach (var kv in (Dictionary<string, object>)v) { if (!first) b.Append(','); first = false; Quote(b, kv.Key); b.Append(':'); Write(b, kv.Value); }
                b.Append('}');
            }
            else if (v is List<object>)
            {
                b.Append('['); bool first = true;
                foreach (var o in (List<object>)v) { if (!first) b.Append(','); first = false; Write(b, o); }
                b.Append(']');
            }
            else Quote(b, Convert.ToString(v, CultureInfo.InvariantCulture));
        }

        static void Quote(StringBuilder b, string s)
        {
            b.Append('"');
            foreach (var c in s)
            {
                if (c == '"' || c == '\\') b.Append('\\').Append(c);
                else if (c < 0x20) b.Append("\\u").Append(((int)c).ToString("x4"));
                else b.Append(c);
            }
            b.Append('"');
        }
    }
}
