// A pharmacy sale against ybposd from Java, JDK only (17+): a Unix-domain
// SocketChannel, one JSON-RPC request per line, and a small JSON reader and
// writer (the JDK has none). Money stays BigDecimal, never double.
//
//   java examples/java/Sale.java [/run/ybpos/api.sock]        (source launcher)
//   javac -d out examples/java/Sale.java && java -cp out Sale  (compiled)
//
// Waits for the patient's 医保码 (scan.wait; a payment code gets its hint),
// pre-settles (2101), settles (2102), prints the receipt with the split, and
// cancels (2103). Exit 0 when the sale went through and was cancelled.

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.math.BigDecimal;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

public final class Sale {
    /** An error answer from ybposd: code, message and data (data.kind). */
    static final class RpcError extends Exception {
        final long code;
        final String text;
        final Map<String, Object> data;

        RpcError(Map<String, Object> e) {
            super(e.get("code") + " " + e.get("message"));
            this.code = ((BigDecimal) e.get("code")).longValue();
            this.text = String.valueOf(e.get("message"));
            this.data = obj(e.get("data"));
        }
    }

    /** One connection to ybposd's Unix socket. */
    static final class Ybpos implements AutoCloseable {
        private final SocketChannel ch;
        private final BufferedReader in;
        private long nextId = 1;

        Ybpos(String path) throws IOException {
            ch = SocketChannel.open(StandardProtocolFamily.UNIX);
            ch.connect(UnixDomainSocketAddress.of(path));
            in = new BufferedReader(new InputStreamReader(Channels.newInputStream(ch), StandardCharsets.UTF_8));
        }

        Map<String, Object> call(String method, Map<String, Object> params) throws IOException, RpcError {
            long id = nextId++;
            Map<String, Object> req = new LinkedHashMap<>();
            req.put("jsonrpc", "2.0");
            req.put("id", id);
            req.put("method", method);
            req.put("params", params);
            ByteBuffer out = StandardCharsets.UTF_8.encode(Json.write(req) + "\n");
            while (out.hasRemaining()) ch.write(out);
            String line;
            while ((line = in.readLine()) != null) {
                Map<String, Object> msg = obj(Json.parse(line));
                Object rid = msg.get("id");
                if (rid instanceof BigDecimal && ((BigDecimal) rid).longValue() == id) {
                    if (msg.containsKey("error")) throw new RpcError(obj(msg.get("error")));
                    return obj(msg.get("result"));
                }
            }
            throw new IOException("ybposd closed the connection");
        }

        @Override
        public void close() throws IOException {
            ch.close();
        }
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> obj(Object o) {
        return o instanceof Map ? (Map<String, Object>) o : new LinkedHashMap<>();
    }

    static Map<String, Object> map(Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) m.put((String) kv[i], kv[i + 1]);
        return m;
    }

    static String masked(String s) {
        if (s.length() <= 8) return "*".repeat(s.length());
        return s.substring(0, 4) + "*".repeat(s.length() - 8) + s.substring(s.length() - 4);
    }

    static void receipt(String title, Map<String, Object> s) {
        System.out.println("--- " + title + " ---");
        System.out.println("  settlement  " + s.getOrDefault("setl_id", "(pre-settlement)"));
        System.out.println("  total       " + s.get("medfee_sumamt"));
        System.out.println("  fund        " + s.get("fund_pay_sumamt"));
        System.out.println("  account     " + s.get("acct_pay"));
        System.out.println("  cash        " + s.get("psn_cash_pay"));
        System.out.println("  balance     " + s.get("balc"));
    }

    public static void main(String[] args) throws Exception {
        String path = args.length > 0 ? args[0] : "/run/ybpos/api.sock";
        try (Ybpos api = new Ybpos(path)) {
            Map<String, Object> who = null;
            System.out.println("Waiting for the patient's 医保码 …");
            while (who == null) {
                try {
                    who = api.call("scan.wait", map("business_type", "02121", "timeout_ms", 60000));
                } catch (RpcError e) {
                    if (e.code == 1002) System.out.println("Not a 医保码: " + e.text);
                    else if (e.code == 1001) System.out.println("Still waiting …");
                    else throw e;
                }
            }
            Map<String, Object> base = obj(obj(who.get("person")).get("baseinfo"));
            System.out.println("Patient: " + base.get("psn_name") + " " + masked((String) base.get("certno")));
            String session = (String) who.get("session_id");

            String ref = "JAVA-" + LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMddHHmmss"));
            String[][] lines = {{"XA01", "YP-0001", "2", "12.50"}, {"XC03", "YP-0003", "3", "6.80"}};
            List<Object> detail = new ArrayList<>();
            BigDecimal total = BigDecimal.ZERO;
            for (int i = 0; i < lines.length; i++) {
                BigDecimal amount = new BigDecimal(lines[i][3]).multiply(new BigDecimal(lines[i][2]));
                total = total.add(amount);
                detail.add(map("feedetl_sn", ref + "-" + (i + 1), "med_list_codg", lines[i][0],
                        "medins_list_codg", lines[i][1], "cnt", Integer.parseInt(lines[i][2]),
                        "pric", lines[i][3], "det_item_fee_sumamt", amount.toPlainString()));
            }
            Map<String, Object> sale = map(
                    "druginfo", map("begntime", LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss")),
                            "medfee_sumamt", total.toPlainString(), "acct_used_flag", "1", "med_type", "41"),
                    "drugdetail", detail);

            Map<String, Object> pre = api.call("txn.submit",
                    map("client_ref", ref + "-2101", "infno", "2101", "session_id", session, "input", sale));
            receipt("pre-settlement (2101)", obj(obj(pre.get("output")).get("setlinfo")));

            Map<String, Object> done = api.call("txn.submit",
                    map("client_ref", ref + "-2102", "infno", "2102", "session_id", session, "input", sale));
            if (!"succeeded".equals(done.get("state"))) {
                // unknown / reversing: ybposd undoes it by itself; follow it with txn.get.
                System.err.println("Settlement " + done.get("txn_id") + " is " + done.get("state"));
                System.exit(1);
            }
            Map<String, Object> setl = obj(obj(done.get("output")).get("setlinfo"));
            receipt("receipt (2102)", setl);

            Map<String, Object> undo = api.call("txn.submit", map("client_ref", ref + "-2103", "infno", "2103",
                    "session_id", session, "input", map("data", map("setl_id", setl.get("setl_id"), "mdtrt_id", setl.get("mdtrt_id")))));
            if (!"succeeded".equals(undo.get("state"))) {
                System.err.println("Cancel " + undo.get("txn_id") + " is " + undo.get("state"));
                System.exit(1);
            }
            Map<String, Object> cancelled = obj(obj(undo.get("output")).get("setlinfo"));
            receipt("cancelled (2103)", cancelled);
            System.out.println("RESULT setl_id=" + setl.get("setl_id") + " cancel_setl_id=" + cancelled.get("setl_id")
                    + " total=" + total.toPlainString());
        } catch (IOException e) {
            System.err.println("Cannot talk to ybposd (" + e.getMessage() + "): systemctl status ybposd");
            System.exit(3);
        } catch (RpcError e) {
            System.err.println("ybposd said no: " + e.getMessage());
            System.exit(1);
        }
    }

    /** Just enough JSON: objects (ordered), arrays, strings, BigDecimal numbers, booleans, null. */
    static final class Json {
        private final String s;
        private int i;

        private Json(String s) {
            this.s = s;
        }

        static Object parse(String text) {
            Json j = new Json(text);
            Object v = j.value();
            j.ws();
            if (j.i != j.s.length()) throw new IllegalArgumentException("trailing data at " + j.i);
            return v;
        }

        private void ws() {
            while (i < s.length() && " \t\r\n".indexOf(s.charAt(i)) >= 0) i++;
        }

        private Object value() {
            ws();
            char c = s.charAt(i);
            if (c == '{') {
                Map<String, Object> m = new LinkedHashMap<>();
                i++;
                ws();
                if (s.charAt(i) == '}') { i++; return m; }
                while (true) {
                    ws();
                    String k = string();
                    ws();
                    expect(':');
                    m.put(k, value());
                    ws();
                    if (s.charAt(i) == ',') { i++; continue; }
                    expect('}');
                    return m;
                }
            }
            if (c == '[') {
                List<Object> a = new ArrayList<>();
                i++;
                ws();
                if (s.charAt(i) == ']') { i++; return a; }
                while (true) {
                    a.add(value());
                    ws();
                    if (s.charAt(i) == ',') { i++; continue; }
                    expect(']');
                    return a;
                }
            }
            if (c == '"') return string();
            if (s.startsWith("true", i)) { i += 4; return Boolean.TRUE; }
            if (s.startsWith("false", i)) { i += 5; return Boolean.FALSE; }
            if (s.startsWith("null", i)) { i += 4; return null; }
            int start = i;
            while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0) i++;
            if (start == i) throw new IllegalArgumentException("unexpected " + c + " at " + i);
            return new BigDecimal(s.substring(start, i));
        }

        private void expect(char c) {
            if (s.charAt(i) != c) throw new IllegalArgumentException("expected " + c + " at " + i);
            i++;
        }

        private String string() {
            expect('"');
            StringBuilder b = new StringBuilder();
            while (true) {
                char c = s.charAt(i++);
                if (c == '"') return b.toString();
                if (c != '\\') { b.append(c); continue; }
                char e = s.charAt(i++);
                switch (e) {
                    case 'n': b.append('\n'); break;
                    case 't': b.append('\t'); break;
                    case 'r': b.append('\r'); break;
                    case 'b': b.append('\b'); break;
                    case 'f': b.append('\f'); break;
                    case 'u': b.append((char) Integer.parseInt(s.substring(i, i + 4), 16)); i += 4; break;
                    default: b.append(e);
                }
            }
        }

        static String write(Object v) {
            StringBuilder b = new StringBuilder();
            write(b, v);
            return b.toString();
        }

        @SuppressWarnings("unchecked")
        private static void write(StringBuilder b, Object v) {
            if (v == null) b.append("null");
            else if (v instanceof String) quote(b, (String) v);
            else if (v instanceof BigDecimal) b.append(((BigDecimal) v).toPlainString());
            else if (v instanceof Number || v instanceof Boolean) b.append(v);
            else if (v instanceof Map) {
                b.append('{');
                boolean first = true;
                for (Map.Entry<String, Object> e : ((Map<String, Object>) v).entrySet()) {
                    if (!first) b.append(',');
                    first = false;
                    quote(b, e.getKey());
                    b.append(':');
                    write(b, e.getValue());
                }
                b.append('}');
            } else if (v instanceof List) {
                b.append('[');
                boolean first = true;
                for (Object o : (List<Object>) v) {
                    if (!first) b.append(',');
                    first = false;
                    write(b, o);
                }
                b.append(']');
            } else quote(b, v.toString());
        }

        private static void quote(StringBuilder b, String s) {
            b.append('"');
            for (char c : s.toCharArray()) {
                if (c == '"' || c == '\\') b.append('\\').append(c);
                else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
                else b.append(c);
            }
            b.append('"');
        }
    }
}
