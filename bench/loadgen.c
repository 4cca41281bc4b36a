/*
 * loadgen: a NATS load generator on the C client (libnats), used by
 * bench/router_bench.py to compare the leafnode router with nats-server.
 *
 * Why C: a Python client would be the bottleneck long before the server
 * under test is, so the numbers would measure the client.
 *
 * Subcommands (each prints exactly ONE line of JSON on stdout):
 *
 *   loadgen pubsub -s URL [-n 1000000] [-size 16] [-subs 1] [-timeout 120]
 *                  [-subject bench.x]
 *       N subscriber connections, one publisher connection.  The clock
 *       starts at the first publish and stops when EVERY subscriber has
 *       received n messages.
 *
 *   loadgen reqrep -s URL [-n 20000] [-size 16] [-timeout 120]
 *                  [-subject bench.req] [-warmup 100]
 *       One responder echoing the payload, one requester doing n
 *       sequential requests; reports latency percentiles.
 *
 *   loadgen pub -s URL [-n 1000000] [-size 16] [-timeout 120]
 *               [-subject bench.x]
 *       One publisher connection, no subscribers: n core publishes, then
 *       a flush.  The clock stops at the flush's PONG; on the leafnode
 *       router with a buffered subject that PONG means "all committed".
 *
 *   loadgen jspub -s URL [-n 1000000] [-size 16] [-timeout 120]
 *                 [-subject bench.x] [-window 4096]
 *       JetStream async publishes with at most `window` unacknowledged,
 *       then waits for every ack: the publish rate into a stream.
 *
 *   -s2 URL (pubsub, reqrep): the subscribers / the responder connect to
 *       this second server instead (e.g. a hub, with the publisher on a
 *       leaf).  Interest then has to travel between servers, so before the
 *       clock starts the publisher probes `<subject>.ready` until every
 *       subscriber saw a probe, and the requester retries its warm-up
 *       requests until the responder answers.
 *
 * On any failure the JSON line carries an "error" field and the exit code
 * is 1.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>

#define MAX_SUBS 64
#define ERR_LEN 512

/* ------------------------------------------------------------------ */
/* Shared state                                                        */
/* ------------------------------------------------------------------ */

/* The first asynchronous failure (slow consumer, lost connection) wins;
 * the waiting main thread is woken so a broken run fails fast instead of
 * sitting out the whole timeout. */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static char g_async_err[ERR_LEN];
static bool g_shutting_down;
static int g_done_subs;

static const char *g_mode = "unknown";

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Writes s as a JSON string body (without quotes), escaping what JSON
 * requires; error texts come from the library and may hold anything. */
static void json_escape(FILE *f, const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
}

static void fail(const char *fmt, ...)
{
    char msg[ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    printf("{\"mode\": \"%s\", \"error\": \"", g_mode);
    json_escape(stdout, msg);
    printf("\"}\n");
    fflush(stdout);
    /* _Exit: library threads may still hold locks; skip atexit teardown. */
    _Exit(1);
}

static void check(natsStatus s, const char *what)
{
    if (s != NATS_OK) {
        const char *detail = nats_GetLastError(NULL);
        fail("%s: %s%s%s", what, natsStatus_GetText(s), detail ? ": " : "",
             detail ? detail : "");
    }
}

static void set_async_err(const char *fmt, ...)
{
    pthread_mutex_lock(&g_mu);
    if (g_async_err[0] == '\0' && !g_shutting_down) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g_async_err, sizeof g_async_err, fmt, ap);
        va_end(ap);
        pthread_cond_broadcast(&g_cv);
    }
    pthread_mutex_unlock(&g_mu);
}

static void on_async_error(natsConnection *nc, natsSubscription *sub,
                           natsStatus err, void *closure)
{
    (void)nc;
    (void)sub;
    set_async_err("async error on %s connection: %s", (const char *)closure,
                  natsStatus_GetText(err));
}

static void on_closed(natsConnection *nc, void *closure)
{
    const char *last = NULL;
    natsConnection_GetLastError(nc, &last);
    set_async_err("%s connection closed unexpectedly%s%s", (const char *)closure,
                  last ? ": " : "", last ? last : "");
}

/* Every connection is set up the same way: no reconnect (a reconnect
 * would silently lose messages and skew the numbers), errors reported. */
static natsConnection *connect_to(const char *url, const char *role,
                                  bool send_asap)
{
    natsOptions *opts = NULL;
    natsConnection *nc = NULL;
    check(natsOptions_Create(&opts), "options");
    check(natsOptions_SetURL(opts, url), "set url");
    check(natsOptions_SetAllowReconnect(opts, false), "set reconnect");
    check(natsOptions_SetTimeout(opts, 5000), "set timeout");
    check(natsOptions_SetErrorHandler(opts, on_async_error, (void *)role),
          "set error handler");
    check(natsOptions_SetClosedCB(opts, on_closed, (void *)role),
          "set closed callback");
    check(natsOptions_SetSendAsap(opts, send_asap), "set send asap");
    natsStatus s = natsConnection_Connect(&nc, opts);
    natsOptions_Destroy(opts);
    if (s != NATS_OK)
        check(s, role);
    return nc;
}

/* ------------------------------------------------------------------ */
/* Arguments                                                           */
/* ------------------------------------------------------------------ */

typedef struct {
    const char *url;
    const char *url2; /* subscribers / responder; NULL = url */
    const char *subject;
    int64_t n;
    int size;
    int subs;
    int64_t timeout_s;
    int64_t warmup;
    int64_t window; /* jspub: max unacknowledged async publishes */
} args_t;

static int64_t parse_int(const char *flag, const char *v, int64_t min)
{
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x < min)
        fail("bad value for %s: '%s' (integer >= %" PRId64 " expected)", flag, v,
             min);
    return (int64_t)x;
}

static void parse_args(int argc, char **argv, args_t *a)
{
    for (int i = 2; i < argc; i++) {
        const char *flag = argv[i];
        if (i + 1 >= argc)
            fail("missing value for %s", flag);
        const char *v = argv[++i];
        if (strcmp(flag, "-s") == 0)
            a->url = v;
        else if (strcmp(flag, "-s2") == 0)
            a->url2 = v;
        else if (strcmp(flag, "-subject") == 0)
            a->subject = v;
        else if (strcmp(flag, "-n") == 0)
            a->n = parse_int(flag, v, 1);
        else if (strcmp(flag, "-size") == 0)
            a->size = (int)parse_int(flag, v, 0);
        else if (strcmp(flag, "-subs") == 0)
            a->subs = (int)parse_int(flag, v, 1);
        else if (strcmp(flag, "-timeout") == 0)
            a->timeout_s = parse_int(flag, v, 1);
        else if (strcmp(flag, "-warmup") == 0)
            a->warmup = parse_int(flag, v, 0);
        else if (strcmp(flag, "-window") == 0)
            a->window = parse_int(flag, v, 1);
        else
            fail("unknown option %s", flag);
    }
    if (a->subs > MAX_SUBS)
        fail("-subs must be <= %d", MAX_SUBS);
    if (a->size > 64 * 1024 * 1024)
        fail("-size too large");
}

static char *make_payload(int size)
{
    char *p = malloc(size > 0 ? (size_t)size : 1);
    if (p == NULL)
        fail("out of memory");
    memset(p, 'x', (size_t)size);
    return p;
}

/* ------------------------------------------------------------------ */
/* pubsub                                                              */
/* ------------------------------------------------------------------ */

typedef struct {
    natsConnection *nc;
    natsSubscription *sub;
    natsSubscription *ready_sub;
    int ready; /* set by the ready-probe callback */
    int64_t target;
    int64_t count; /* only the sub's delivery thread writes; main reads */
    int64_t last_ns;
} subscriber_t;

static void on_bench_msg(natsConnection *nc, natsSubscription *sub,
                         natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    subscriber_t *s = closure;
    int64_t c = __atomic_add_fetch(&s->count, 1, __ATOMIC_RELAXED);
    if (c == s->target) {
        s->last_ns = now_ns();
        pthread_mutex_lock(&g_mu);
        g_done_subs++;
        pthread_cond_broadcast(&g_cv);
        pthread_mutex_unlock(&g_mu);
    }
    natsMsg_Destroy(msg);
}

static void on_ready_msg(natsConnection *nc, natsSubscription *sub,
                         natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    __atomic_store_n(&((subscriber_t *)closure)->ready, 1, __ATOMIC_RELAXED);
    natsMsg_Destroy(msg);
}

/* Waits until `done` subscribers finished, an async error occurred, or
 * the deadline passed.  Returns false on timeout. */
static bool wait_done(int want, int64_t deadline_s)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += deadline_s;
    bool ok = true;
    pthread_mutex_lock(&g_mu);
    while (g_done_subs < want && g_async_err[0] == '\0') {
        if (pthread_cond_timedwait(&g_cv, &g_mu, &dl) == ETIMEDOUT) {
            ok = g_done_subs >= want;
            break;
        }
    }
    pthread_mutex_unlock(&g_mu);
    return ok;
}

static void print_counts(subscriber_t *subs, int n)
{
    printf("[");
    for (int i = 0; i < n; i++)
        printf("%s%" PRId64, i ? ", " : "",
               __atomic_load_n(&subs[i].count, __ATOMIC_RELAXED));
    printf("]");
}

static int run_pubsub(const args_t *a)
{
    static subscriber_t subs[MAX_SUBS];
    char role[32];

    for (int i = 0; i < a->subs; i++) {
        subscriber_t *s = &subs[i];
        s->target = a->n;
        s->nc = connect_to(a->url2 ? a->url2 : a->url, "subscriber", false);
        snprintf(role, sizeof role, "subscribe %d", i);
        check(natsConnection_Subscribe(&s->sub, s->nc, a->subject, on_bench_msg, s),
              role);
        if (a->url2) {
            char ready_subject[256];
            snprintf(ready_subject, sizeof ready_subject, "%s.ready", a->subject);
            check(natsConnection_Subscribe(&s->ready_sub, s->nc, ready_subject,
                                           on_ready_msg, s),
                  "subscribe ready probe");
        }
        /* Never drop client-side: a drop would hide as a timeout. */
        check(natsSubscription_SetPendingLimits(s->sub, -1, -1), "pending limits");
        /* The PONG proves the server has processed our SUB. */
        check(natsConnection_FlushTimeout(s->nc, 10000), "flush subscriber");
    }

    natsConnection *pub = connect_to(a->url, "publisher", false);
    /* Interest registration on a leaf router may travel further than the
     * sub's own connection; a flush on the publisher too makes sure the
     * publisher's connection is fully established before the clock starts. */
    check(natsConnection_FlushTimeout(pub, 10000), "flush publisher");
    if (a->url2) {
        /* The subscribers sit on another server: wait until a probe from
         * the publisher reaches every one of them (interest has arrived). */
        char ready_subject[256];
        snprintf(ready_subject, sizeof ready_subject, "%s.ready", a->subject);
        int64_t ready_deadline = now_ns() + 20000000000LL;
        for (;;) {
            int ready = 0;
            for (int i = 0; i < a->subs; i++)
                ready += __atomic_load_n(&subs[i].ready, __ATOMIC_RELAXED);
            if (ready == a->subs)
                break;
            if (now_ns() > ready_deadline)
                fail("subscribers on %s never saw the ready probe", a->url2);
            check(natsConnection_Publish(pub, ready_subject, "r", 1), "ready probe");
            check(natsConnection_FlushTimeout(pub, 10000), "flush ready probe");
            nats_Sleep(5);
        }
    }

    char *payload = make_payload(a->size);
    int64_t t0 = now_ns();
    int64_t deadline = t0 + a->timeout_s * 1000000000LL;
    for (int64_t i = 0; i < a->n; i++) {
        natsStatus s = natsConnection_Publish(pub, a->subject, payload, a->size);
        if (s != NATS_OK)
            check(s, "publish");
        /* Reading the clock every message would cost more than a publish;
         * every 4096 is plenty to notice a stalled server. */
        if ((i & 4095) == 4095 && now_ns() > deadline)
            fail("timeout after %" PRId64 " s while publishing (%" PRId64
                 " of %" PRId64 " published)",
                 a->timeout_s, i + 1, a->n);
    }
    check(natsConnection_FlushTimeout(pub, a->timeout_s * 1000), "flush publisher");
    int64_t t_pub = now_ns();

    int64_t remaining_s = a->timeout_s - (t_pub - t0) / 1000000000LL;
    bool ok = wait_done(a->subs, remaining_s > 0 ? remaining_s : 1);

    pthread_mutex_lock(&g_mu);
    g_shutting_down = true;
    char async_err[ERR_LEN];
    memcpy(async_err, g_async_err, sizeof async_err);
    pthread_mutex_unlock(&g_mu);

    int64_t dropped_total = 0;
    for (int i = 0; i < a->subs; i++) {
        int64_t dropped = 0;
        if (natsSubscription_GetDropped(subs[i].sub, &dropped) == NATS_OK)
            dropped_total += dropped;
    }

    if (!ok || async_err[0] != '\0') {
        printf("{\"mode\": \"pubsub\", \"error\": \"");
        if (async_err[0] != '\0')
            json_escape(stdout, async_err);
        else
            printf("timeout after %" PRId64 " s waiting for subscribers",
                   a->timeout_s);
        printf("\", \"n\": %" PRId64 ", \"subs\": %d, \"dropped\": %" PRId64
               ", \"received\": ",
               a->n, a->subs, dropped_total);
        print_counts(subs, a->subs);
        printf("}\n");
        fflush(stdout);
        _Exit(1);
    }

    int64_t t_end = t0;
    for (int i = 0; i < a->subs; i++)
        if (subs[i].last_ns > t_end)
            t_end = subs[i].last_ns;
    double elapsed = (double)(t_end - t0) / 1e9;
    double pub_elapsed = (double)(t_pub - t0) / 1e9;

    printf("{\"mode\": \"pubsub\", \"n\": %" PRId64 ", \"size\": %d, \"subs\": %d, "
           "\"msgs_per_sec\": %.1f, \"delivered_msgs_per_sec\": %.1f, "
           "\"elapsed_s\": %.6f, \"publish_msgs_per_sec\": %.1f, "
           "\"publish_elapsed_s\": %.6f, \"sub_msgs_per_sec\": [",
           a->n, a->size, a->subs, (double)a->n / elapsed,
           (double)a->n * a->subs / elapsed, elapsed, (double)a->n / pub_elapsed,
           pub_elapsed);
    for (int i = 0; i < a->subs; i++)
        printf("%s%.1f", i ? ", " : "",
               (double)a->n / ((double)(subs[i].last_ns - t0) / 1e9));
    printf("], \"dropped\": %" PRId64 ", \"received\": ", dropped_total);
    print_counts(subs, a->subs);
    printf("}\n");
    fflush(stdout);

    natsConnection_Destroy(pub);
    for (int i = 0; i < a->subs; i++) {
        natsSubscription_Destroy(subs[i].sub);
        natsConnection_Destroy(subs[i].nc);
    }
    free(payload);
    return 0;
}

/* ------------------------------------------------------------------ */
/* reqrep                                                              */
/* ------------------------------------------------------------------ */

static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *msg,
                       void *closure)
{
    (void)sub;
    (void)closure;
    const char *reply = natsMsg_GetReply(msg);
    if (reply != NULL) {
        natsStatus s = natsConnection_Publish(nc, reply, natsMsg_GetData(msg),
                                              natsMsg_GetDataLength(msg));
        if (s != NATS_OK)
            set_async_err("responder publish: %s", natsStatus_GetText(s));
    }
    natsMsg_Destroy(msg);
}

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

/* Nearest-rank percentile of a sorted array, in microseconds. */
static double pct_us(const int64_t *sorted, int64_t n, double q)
{
    int64_t rank = (int64_t)((q * (double)n) + 0.999999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double)sorted[rank - 1] / 1e3;
}

static int run_reqrep(const args_t *a)
{
    /* SendAsap: the reply must leave now, not when the flusher wakes up;
     * otherwise we would measure libnats's buffering, not the server. */
    natsConnection *resp = connect_to(a->url2 ? a->url2 : a->url, "responder", true);
    natsSubscription *sub = NULL;
    check(natsConnection_Subscribe(&sub, resp, a->subject, on_request, NULL),
          "subscribe responder");
    check(natsSubscription_SetPendingLimits(sub, -1, -1), "pending limits");
    check(natsConnection_FlushTimeout(resp, 10000), "flush responder");

    natsConnection *req = connect_to(a->url, "requester", true);
    char *payload = make_payload(a->size);
    int64_t *lat = malloc((size_t)a->n * sizeof *lat);
    if (lat == NULL)
        fail("out of memory");

    int64_t deadline = now_ns() + a->timeout_s * 1000000000LL;
    natsMsg *reply = NULL;
    /* Warm-up: the first request creates the reply inbox subscription
     * (one extra round trip) and warms caches in both client and server. */
    for (int64_t i = 0; i < a->warmup; i++) {
        natsStatus ws = natsConnection_Request(&reply, req, a->subject, payload,
                                               a->size, 5000);
        /* Across servers the responder's interest may not have arrived yet,
         * or may still be settling (a leaf that has just (re)connected):
         * retry warm-ups (bounded by the overall deadline) instead of failing. */
        if (a->url2 && ws != NATS_OK) {
            if (now_ns() > deadline)
                check(ws, "warm-up request");
            nats_Sleep(10);
            i--;
            continue;
        }
        check(ws, "warm-up request");
        natsMsg_Destroy(reply);
    }

    int64_t t0 = now_ns();
    for (int64_t i = 0; i < a->n; i++) {
        int64_t start = now_ns();
        natsStatus s = natsConnection_Request(&reply, req, a->subject, payload,
                                              a->size, 5000);
        int64_t end = now_ns();
        if (s != NATS_OK)
            fail("request %" PRId64 " of %" PRId64 ": %s", i, a->n,
                 natsStatus_GetText(s));
        if (natsMsg_GetDataLength(reply) != a->size)
            fail("reply %" PRId64 " has %d bytes, expected %d", i,
                 natsMsg_GetDataLength(reply), a->size);
        natsMsg_Destroy(reply);
        lat[i] = end - start;
        if (end > deadline)
            fail("timeout after %" PRId64 " s (%" PRId64 " of %" PRId64
                 " requests done)",
                 a->timeout_s, i + 1, a->n);
    }
    double elapsed = (double)(now_ns() - t0) / 1e9;

    pthread_mutex_lock(&g_mu);
    g_shutting_down = true;
    char async_err[ERR_LEN];
    memcpy(async_err, g_async_err, sizeof async_err);
    pthread_mutex_unlock(&g_mu);
    if (async_err[0] != '\0')
        fail("%s", async_err);

    double sum = 0;
    for (int64_t i = 0; i < a->n; i++)
        sum += (double)lat[i];
    qsort(lat, (size_t)a->n, sizeof *lat, cmp_i64);

    printf("{\"mode\": \"reqrep\", \"n\": %" PRId64 ", \"size\": %d, "
           "\"warmup\": %" PRId64 ", \"reqs_per_sec\": %.1f, \"elapsed_s\": %.6f, "
           "\"mean_us\": %.1f, \"min_us\": %.1f, \"p50_us\": %.1f, "
           "\"p90_us\": %.1f, \"p99_us\": %.1f, \"max_us\": %.1f}\n",
           a->n, a->size, a->warmup, (double)a->n / elapsed, elapsed,
           sum / (double)a->n / 1e3, (double)lat[0] / 1e3, pct_us(lat, a->n, 0.50),
           pct_us(lat, a->n, 0.90), pct_us(lat, a->n, 0.99),
           (double)lat[a->n - 1] / 1e3);
    fflush(stdout);

    natsConnection_Destroy(req);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(resp);
    free(lat);
    free(payload);
    return 0;
}

/* ------------------------------------------------------------------ */
/* pub: publish only, the final flush is the end of the clock          */
/* ------------------------------------------------------------------ */

/* Takes any async error recorded so far and stops recording more. */
static void take_async_err(char *out)
{
    pthread_mutex_lock(&g_mu);
    g_shutting_down = true;
    memcpy(out, g_async_err, ERR_LEN);
    pthread_mutex_unlock(&g_mu);
}

static int run_pub(const args_t *a)
{
    natsConnection *pub = connect_to(a->url, "publisher", false);
    check(natsConnection_FlushTimeout(pub, 10000), "flush publisher");
    char *payload = make_payload(a->size);
    int64_t t0 = now_ns();
    int64_t deadline = t0 + a->timeout_s * 1000000000LL;
    for (int64_t i = 0; i < a->n; i++) {
        natsStatus s = natsConnection_Publish(pub, a->subject, payload, a->size);
        if (s != NATS_OK)
            check(s, "publish");
        if ((i & 4095) == 4095 && now_ns() > deadline)
            fail("timeout after %" PRId64 " s while publishing (%" PRId64
                 " of %" PRId64 " published)",
                 a->timeout_s, i + 1, a->n);
    }
    int64_t t_sent = now_ns();
    int64_t left_ms = (deadline - t_sent) / 1000000LL;
    check(natsConnection_FlushTimeout(pub, left_ms > 1000 ? left_ms : 1000),
          "flush publisher");
    int64_t t_end = now_ns();

    char async_err[ERR_LEN];
    take_async_err(async_err);
    if (async_err[0] != '\0')
        fail("%s", async_err);

    double elapsed = (double)(t_end - t0) / 1e9;
    printf("{\"mode\": \"pub\", \"n\": %" PRId64 ", \"size\": %d, "
           "\"msgs_per_sec\": %.1f, \"elapsed_s\": %.6f, "
           "\"send_msgs_per_sec\": %.1f, \"flush_s\": %.6f}\n",
           a->n, a->size, (double)a->n / elapsed, elapsed,
           (double)a->n / ((double)(t_sent - t0) / 1e9),
           (double)(t_end - t_sent) / 1e9);
    fflush(stdout);
    natsConnection_Destroy(pub);
    free(payload);
    return 0;
}

/* ------------------------------------------------------------------ */
/* jspub: JetStream async publishes, acked                             */
/* ------------------------------------------------------------------ */

static int64_t g_js_errors;

static void on_js_error(jsCtx *js, jsPubAckErr *pae, void *closure)
{
    (void)js;
    (void)closure;
    __atomic_add_fetch(&g_js_errors, 1, __ATOMIC_RELAXED);
    set_async_err("publish ack error: %s%s%s", natsStatus_GetText(pae->Err),
                  pae->ErrText ? ": " : "", pae->ErrText ? pae->ErrText : "");
}

static int run_jspub(const args_t *a)
{
    natsConnection *nc = connect_to(a->url, "publisher", false);
    check(natsConnection_FlushTimeout(nc, 10000), "flush publisher");
    jsOptions jo;
    check(jsOptions_Init(&jo), "jetstream options");
    jo.PublishAsync.MaxPending = a->window;
    jo.PublishAsync.ErrHandler = on_js_error;
    /* A full window waits for acks instead of failing the publish. */
    jo.PublishAsync.StallWait = a->timeout_s * 1000;
    jo.Wait = a->timeout_s * 1000;
    jsCtx *js = NULL;
    check(natsConnection_JetStream(&js, nc, &jo), "jetstream context");

    char *payload = make_payload(a->size);
    int64_t t0 = now_ns();
    int64_t deadline = t0 + a->timeout_s * 1000000000LL;
    for (int64_t i = 0; i < a->n; i++) {
        natsStatus s = js_PublishAsync(js, a->subject, payload, a->size, NULL);
        if (s != NATS_OK)
            check(s, "jetstream publish");
        if ((i & 4095) == 4095 && now_ns() > deadline)
            fail("timeout after %" PRId64 " s while publishing (%" PRId64
                 " of %" PRId64 " published)",
                 a->timeout_s, i + 1, a->n);
    }
    int64_t t_sent = now_ns();
    jsPubOptions po;
    check(jsPubOptions_Init(&po), "publish options");
    int64_t left_ms = (deadline - t_sent) / 1000000LL;
    po.MaxWait = left_ms > 1000 ? left_ms : 1000;
    check(js_PublishAsyncComplete(js, &po), "waiting for publish acks");
    int64_t t_end = now_ns();

    char async_err[ERR_LEN];
    take_async_err(async_err);
    int64_t errors = __atomic_load_n(&g_js_errors, __ATOMIC_RELAXED);
    if (async_err[0] != '\0')
        fail("%s (%" PRId64 " errors)", async_err, errors);

    double elapsed = (double)(t_end - t0) / 1e9;
    printf("{\"mode\": \"jspub\", \"n\": %" PRId64 ", \"size\": %d, "
           "\"window\": %" PRId64 ", \"msgs_per_sec\": %.1f, \"elapsed_s\": %.6f, "
           "\"errors\": %" PRId64 "}\n",
           a->n, a->size, a->window, (double)a->n / elapsed, elapsed, errors);
    fflush(stdout);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    free(payload);
    return 0;
}

/* ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    if (argc < 2)
        fail("usage: loadgen pubsub|reqrep|pub|jspub -s nats://host:port [options]");

    args_t a = {
        .url = "nats://127.0.0.1:4222",
        .subject = NULL,
        .n = 0,
        .size = 16,
        .subs = 1,
        .timeout_s = 120,
        .warmup = 100,
        .window = 4096,
    };
    const char *cmd = argv[1];
    int rc;
    if (strcmp(cmd, "pubsub") == 0) {
        g_mode = "pubsub";
        a.subject = "bench.x";
        a.n = 1000000;
        parse_args(argc, argv, &a);
        check(nats_Open(-1), "nats_Open");
        rc = run_pubsub(&a);
    } else if (strcmp(cmd, "reqrep") == 0) {
        g_mode = "reqrep";
        a.subject = "bench.req";
        a.n = 20000;
        parse_args(argc, argv, &a);
        check(nats_Open(-1), "nats_Open");
        rc = run_reqrep(&a);
    } else if (strcmp(cmd, "pub") == 0 || strcmp(cmd, "jspub") == 0) {
        bool js = cmd[0] == 'j';
        g_mode = js ? "jspub" : "pub";
        a.subject = "bench.x";
        a.n = 1000000;
        parse_args(argc, argv, &a);
        check(nats_Open(-1), "nats_Open");
        rc = js ? run_jspub(&a) : run_pub(&a);
    } else {
        fail("unknown subcommand '%s' (expected pubsub, reqrep, pub or jspub)", cmd);
        return 1;
    }
    /* Wait briefly for library threads so teardown does not race exit. */
    nats_CloseAndWait(2000);
    return rc;
}
