/*
 * A Java caller of libNationECCode.so through JNA (Debian: libjna-java), as
 * a Java HIS would load the SDK. Used by the tests (tests/nation_ec.rs) and
 * as an example. Run from source (Java 11+):
 *
 *   echo '{"orgId":"H1","transType":"ec.query","data":{"businessType":"02121"}}' |
 *     java -cp /usr/share/java/jna.jar NationEcCall.java ./target/debug/libNationECCode.so nation
 *
 * The input JSON is read from stdin (UTF-8); strings cross in the library's
 * encoding (GBK when YBPOS_COMPAT_ENCODING=gbk, else UTF-8), as bytes, so
 * the JVM's default charset does not matter. The buffer is
 * YBPOS_COMPAT_OUTBUF bytes (default 4096). Prints the status
 * (NationEcTrans) or return value (EcQuery), then the answer, in UTF-8.
 */
import com.sun.jna.Library;
import com.sun.jna.Native;
import com.sun.jna.NativeLong;
import java.io.PrintStream;
import java.nio.charset.Charset;
import java.nio.charset.StandardCharsets;

public class NationEcCall {
    /** The library's two functions. */
    public interface NationECCode extends Library {
        String NationEcTrans(String url, byte[] pindata, byte[] poutdata);

        NativeLong EcQuery(byte[] pInData, byte[] pOutData);
    }

    public static void main(String[] args) throws Exception {
        NationECCode lib = Native.load(args[0], NationECCode.class);
        Charset cs = "gbk".equalsIgnoreCase(System.getenv("YBPOS_COMPAT_ENCODING"))
                ? Charset.forName("GBK")
                : StandardCharsets.UTF_8;
        String size = System.getenv("YBPOS_COMPAT_OUTBUF");
        byte[] out = new byte[size == null || size.isEmpty() ? 4096 : Integer.parseInt(size)];
        String text = new String(System.in.readAllBytes(), StandardCharsets.UTF_8).trim();
        byte[] in = (text + "\0").getBytes(cs);
        String status = args[1].equals("ecquery")
                ? String.valueOf(lib.EcQuery(in, out).longValue())
                : lib.NationEcTrans("http://ignored", in, out);
        int n = 0;
        while (n < out.length && out[n] != 0) {
            n++;
        }
        PrintStream o = new PrintStream(System.out, true, "UTF-8");
        o.println(status);
        o.println(new String(out, 0, n, cs));
    }
}
