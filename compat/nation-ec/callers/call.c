/*
 * A C caller of libNationECCode.so, loaded with dlopen as an HIS loads the
 * SDK. Used by the tests (tests/nation_ec.rs) and as an example.
 *
 *   gcc -I compat/nation-ec -o call compat/nation-ec/callers/call.c -ldl
 *   ./call ./target/debug/libNationECCode.so nation '{"orgId":"H1","transType":"ec.query","data":{"businessType":"02121"}}'
 *   ./call LIB ecquery JSON      # Jiangsu's EcQuery
 *   ./call LIB bad               # every bad input the tests name, one per line
 *
 * Prints the status (NationEcTrans) or return value (EcQuery) on one line
 * and the answer on the next; `bad` prints "name<TAB>status<TAB>answer"
 * lines. The answer buffer is YBPOS_COMPAT_OUTBUF bytes (default 4096)
 * followed by 64 canary bytes; the program exits 3 if the library wrote
 * past the buffer and 4 if the answer has no terminator within it.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nation_ec.h"

#define CANARY 0xAB
#define CANARY_LEN 64

static __typeof__(&NationEcTrans) nation_ec_trans;
static __typeof__(&EcQuery) ec_query;
static size_t outbuf;

static char *new_buffer(void) {
    char *b = malloc(outbuf + CANARY_LEN);
    if (!b) {
        perror("malloc");
        exit(2);
    }
    memset(b, CANARY, outbuf + CANARY_LEN);
    return b;
}

/* The buffer was used within its size and ends its answer with a NUL. */
static void check_buffer(const char *b) {
    for (size_t i = outbuf; i < outbuf + CANARY_LEN; i++) {
        if ((unsigned char)b[i] != CANARY) {
            fprintf(stderr, "the library wrote past the %zu-byte buffer\n", outbuf);
            exit(3);
        }
    }
    if (!memchr(b, 0, outbuf)) {
        fprintf(stderr, "no terminator within the %zu-byte buffer\n", outbuf);
        exit(4);
    }
}

/* One NationEcTrans call; prints name, status and answer on one line. */
static void trans_case(const char *name, const char *url, const char *in) {
    char *out = new_buffer();
    const char *st = nation_ec_trans(url, in, out);
    check_buffer(out);
    printf("%s\t%s\t%s\n", name, st, out);
    free(out);
}

static void ecquery_case(const char *name, const char *in) {
    char *out = new_buffer();
    long rc = ec_query(in, out);
    check_buffer(out);
    printf("%s\t%ld\t%s\n", name, rc, out);
    free(out);
}

#define OK_INPUT                                                                              \
    "{\"orgId\":\"H42130200001\",\"transType\":\"ec.query\",\"data\":{\"orgId\":\"H42130200001\"," \
    "\"businessType\":\"02121\",\"operatorId\":\"001\",\"operatorName\":\"收款员\",\"officeId\":\"\","  \
    "\"officeName\":\"\",\"deviceType\":\"\"},\"extra\":\"\"}"

static void bad_inputs(void) {
    const char *st;
    trans_case("null_input", "http://ignored", NULL);
    st = nation_ec_trans("http://ignored", OK_INPUT, NULL);
    printf("null_output\t%s\t\n", st);
    st = nation_ec_trans(NULL, NULL, NULL);
    printf("null_all\t%s\t\n", st);
    trans_case("null_url", NULL, "{\"transType\":\"ec.query\"}");
    trans_case("empty", "u", "");
    trans_case("invalid_json", "u", "{not json");
    {
        char truncated[sizeof OK_INPUT];
        memcpy(truncated, OK_INPUT, sizeof OK_INPUT);
        truncated[sizeof OK_INPUT / 2] = 0;
        trans_case("truncated_json", "u", truncated);
    }
    trans_case("not_object", "u", "[1,2,3]");
    trans_case("missing_business_type", "u",
               "{\"orgId\":\"H1\",\"transType\":\"ec.query\",\"data\":{\"orgId\":\"H1\"}}");
    trans_case("bad_business_type", "u",
               "{\"transType\":\"ec.query\",\"data\":{\"businessType\":\"2121\"}}");
    trans_case("invalid_utf8", "u",
               "{\"orgId\":\"\xff\xfe\",\"transType\":\"ec.query\",\"data\":{\"businessType\":\"02121\"}}");
    /* 张三 in GBK, passed without YBPOS_COMPAT_ENCODING=gbk. */
    trans_case("gbk_as_utf8", "u",
               "{\"transType\":\"ec.query\",\"data\":{\"businessType\":\"02121\",\"operatorName\":\"\xd5\xc5\xc8\xfd\"}}");
    trans_case("unsupported_trans_type", "u",
               "{\"orgId\":\"H1\",\"transType\":\"cn.nhsa.cert.get\",\"data\":{\"businessType\":\"02121\"}}");
    {
        /* An error answer echoing a 6000-byte extra would not fit 4096 bytes. */
        size_t n = 6000;
        char *in = malloc(n + 200);
        int k = sprintf(in, "{\"orgId\":\"H1\",\"transType\":\"ec.query\",\"data\":{},\"extra\":\"");
        memset(in + k, 'x', n);
        strcpy(in + k + n, "\"}");
        trans_case("error_answer_too_large", "u", in);
        free(in);
    }
    {
        /* 2 MiB: past the library's 1 MiB input limit. */
        size_t n = 2u << 20;
        char *in = malloc(n + 1);
        memset(in, ' ', n);
        in[n] = 0;
        trans_case("input_too_long", "u", in);
        free(in);
    }
    ecquery_case("ecquery_null_input", NULL);
    printf("ecquery_null_output\t%ld\t\n", ec_query(OK_INPUT, NULL));
    ecquery_case("ecquery_invalid_json", "{\"data\":");
    /* GBK mode: the environment is read at each call. */
    setenv("YBPOS_COMPAT_ENCODING", "gbk", 1);
    trans_case("invalid_gbk", "u",
               "{\"orgId\":\"\x81\",\"transType\":\"ec.query\",\"data\":{\"businessType\":\"02121\"}}");
    setenv("YBPOS_COMPAT_ENCODING", "latin-1", 1);
    trans_case("bad_encoding_config", "u", OK_INPUT);
    unsetenv("YBPOS_COMPAT_ENCODING");
    /* A well-formed request while nothing listens on YBPOS_SOCKET. */
    trans_case("daemon_not_running", "u", OK_INPUT);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s LIB nation|ecquery JSON | %s LIB bad\n", argv[0], argv[0]);
        return 2;
    }
    const char *ob = getenv("YBPOS_COMPAT_OUTBUF");
    outbuf = ob && *ob ? strtoul(ob, NULL, 10) : 4096;
    if (outbuf < 1) outbuf = 4096;
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 2;
    }
    nation_ec_trans = (__typeof__(&NationEcTrans))dlsym(lib, "NationEcTrans");
    ec_query = (__typeof__(&EcQuery))dlsym(lib, "EcQuery");
    if (!nation_ec_trans || !ec_query) {
        fprintf(stderr, "dlsym: %s\n", dlerror());
        return 2;
    }
    if (strcmp(argv[2], "bad") == 0) {
        bad_inputs();
    } else if (argc >= 4 && strcmp(argv[2], "nation") == 0) {
        char *out = new_buffer();
        const char *st = nation_ec_trans("http://10.38.22.15:8081/localcfc/api/hsecfc/localQrCodeQuery",
                                         argv[3], out);
        check_buffer(out);
        printf("%s\n%s\n", st, out);
        free(out);
    } else if (argc >= 4 && strcmp(argv[2], "ecquery") == 0) {
        char *out = new_buffer();
        long rc = ec_query(argv[3], out);
        check_buffer(out);
        printf("%ld\n%s\n", rc, out);
        free(out);
    } else {
        fprintf(stderr, "unknown mode %s\n", argv[2]);
        return 2;
    }
    fflush(stdout);
    dlclose(lib);
    return 0;
}
