/* rewind's native hot path: ring buffer -> events -> connections -> HTTP/1.x -> records.
 *
 * A port of the Python reference (sidecar/capture/{ringbuf,events,conntrack,httpstream}.py),
 * kept line for line where it can be, so the two can be read side by side; the differential
 * test (tests/unit/test_native_differential.py) holds them to the same records and counters.
 *
 *   buf.c    growable buffers and header lists
 *   http1.c  one connection's two byte streams -> exchanges (httpstream.py), on llhttp
 *   track.c  events -> connections -> exchanges (conntrack.py), the ring buffer walk (ringbuf.py)
 *   records.c finished exchanges -> Records (conntrack's _publish)
 *   module.c the Python type `Tracker`: counters, log lines, callbacks, the hand-over
 *   pack.c   the Python type `Packer`: a record's XADD (sidecar/contract/xadd.py)
 */
#ifndef REWIND_HOT_H
#define REWIND_HOT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdbool.h>
#include <stdint.h>

#include "llhttp/llhttp.h"

/* -- buf.c ------------------------------------------------------------------------------- */
typedef struct {
    char *p;
    size_t len, cap;
} Buf;

typedef struct { /* one header: name and value are spans of Hdrs.bytes */
    size_t noff, nlen, voff, vlen;
} Pair;

typedef struct { /* an ordered list of header pairs */
    Buf bytes;
    Pair *v;
    size_t n, cap;
} Hdrs;

void *xrealloc(void *p, size_t n); /* aborts on out-of-memory, as the interpreter would */
void buf_add(Buf *b, const char *s, size_t n);
void buf_free(Buf *b);
void buf_move(Buf *dst, Buf *src); /* dst (freed first) takes src's bytes; src is left empty */
void hdrs_add(Hdrs *h, const char *name, size_t nlen, const char *value, size_t vlen);
void hdrs_extend(Hdrs *dst, const Hdrs *src);
void hdrs_free(Hdrs *h);
void hdrs_move(Hdrs *dst, Hdrs *src);

/* -- counters: the metrics the Python wrapper adds on flush ---------------------------------
 * Order and names: COUNTER_NAMES in module.c ((metric attribute, label or None) pairs). */
enum {
    C_REQUESTS,
    C_BYTES_REQUEST,
    C_BYTES_RESPONSE,
    C_EVENTS,
    C_PE_INVALID_METHOD, /* parse_errors{reason} */
    C_PE_INVALID_REQUEST,
    C_PE_INVALID_RESPONSE,
    C_PE_HEADER_TOO_LARGE,
    C_PE_UPGRADED,
    C_PE_UNPAIRED_RESPONSE,
    C_PE_LOST_BYTES,
    C_PE_TLS,
    C_PE_TLS_UNDECRYPTED,
    C_PE_INTERNAL,
    C_INC_CLOSED, /* incomplete{reason} */
    C_INC_LOST_BYTES,
    C_INC_MID_CONNECTION,
    C_INC_SENDFILE_UNREADABLE,
    C_TRUNC_REQUEST, /* truncated_bodies{part} */
    C_TRUNC_RESPONSE,
    C_UNANSWERED,
    C_LOST_BYTES,
    C_OPENED_ACCEPTED, /* connections_opened{how} */
    C_OPENED_SEEDED,
    C_OPENED_RESUMED,
    C_EXPIRED,
    C_N
};

/* -- http1.c ------------------------------------------------------------------------------ */
typedef struct Msg Msg;
struct Msg { /* httpstream._Msg; a request is also its own Exchange */
    int64_t start, last;
    uint64_t flen, hdr_feed, stored, length, raw_left;
    bool cut, hdr_done, head, connect, interim, req_done, resp_done, queued;
    Buf url;
    Hdrs headers, raw; /* raw: pairs as they arrive (the header block, then trailers) */
    Buf body;          /* the stored body so far (the joined chunks) */
    Msg *pair;         /* response -> its request */
    /* the exchange (requests only) */
    uint8_t method, vmaj, vmin;
    Buf ex_body;
    uint64_t ex_body_len;
    bool ex_truncated, resp_truncated;
    int64_t req_end, resp_end;
    int status;
    Hdrs resp_headers;
    Buf resp_body;
    uint64_t resp_body_len;
};

struct Http;

typedef struct { /* httpstream._Side, with httptools' glue state around llhttp */
    llhttp_t p;
    struct Http *h;
    bool is_req;
    Msg *msg;
    uint64_t flen;  /* length of the feed being parsed */
    uint64_t begun; /* messages begun: "the same message as before the feed" */
    Buf hname, hval;
    bool hname_set, hval_set, state_error;
} Side;

struct Tracker;

typedef struct Http { /* httpstream.HttpConnectionParser */
    struct Tracker *t;
    int64_t ts;
    Side q, r;
    Msg **queue; /* requests with complete headers, not yet returned: queue[qhead..qhead+qlen) */
    size_t qhead, qlen, qcap;
    long paired, heads;
    Buf head_buf;
    bool head_active, heading, dead;
    const char *broken;
} Http;

void http_init(Http *h, struct Tracker *t);
void http_free(Http *h);
void http_feed_request(Http *h, const char *data, size_t n, int64_t ts);
void http_feed_response(Http *h, const char *data, size_t n, int64_t ts);
void http_lost(Http *h, bool request, uint64_t nbytes, int64_t ts);
void http_close(Http *h, int64_t ts);
Msg *http_pop_ready(Http *h); /* the next finished exchange in order, or NULL */
Msg *http_pop_any(Http *h);   /* after close: whatever is left, in order */
void msg_free(struct Tracker *t, Msg *m); /* t: recycle it there (NULL: free) */

/* -- track.c ------------------------------------------------------------------------------ */
typedef struct Conn Conn;
struct Conn { /* conntrack._Conn */
    uint64_t key;
    Conn *hnext;       /* hash chain */
    Conn *prev, *next; /* insertion order (the order of the reference's dict) */
    PyObject *id, *peer;
    Http http;
    int64_t expected[2];
    int64_t last_ns;
    uint64_t seq;
    bool synced, tls, tls_raw;
};

/* Python objects made from short byte strings, remembered by their bytes (direct-mapped): a
 * header pair (name, value) as one tuple, a target or version as one str. Immutable, so records
 * can share them. */
#define CACHE_SLOTS 1024
#define CACHE_MAX 96 /* longer byte strings are not cached */
typedef struct {
    uint32_t len, split; /* split: where the value starts (header pairs) */
    char bytes[CACHE_MAX];
    PyObject *obj;
} CacheSlot;

#define MAX_EXTRA_SLOTS 8

typedef struct Tracker {
    PyObject_HEAD
    /* configuration */
    uint64_t max_body, max_hdr;
    int64_t idle_ns;
    bool tls;
    int64_t offset; /* wall - monotonic clock, ns (Clock.offset) */
    PyObject *node, *record_cls, *kwnames, *emit, *read_sendfile, *find_peer, *peer, *decode, *log;
    /* connections */
    Conn **table;
    size_t nbuckets, nconns, nconns_taken; /* nconns_taken: at the last take_counts() */
    Conn *first, *last;
    uint64_t *warned; /* tgids already named in a TLS warning (open addressing, 0 = free) */
    size_t nwarned, warned_cap;
    uint64_t counts[C_N];
    PyObject *batch;            /* records made since the last hand-over */
    Msg *pool[64];              /* freed messages, kept with their buffers (http1.c) */
    int npool;
    PyObject *methods[64];      /* method name strings by llhttp method */
    PyObject *empty_bytes;
    CacheSlot *pairs, *strs;    /* CACHE_SLOTS each */
    /* Records are made by writing their slots (Record is a slots dataclass) rather than by
     * calling the class: rec_off[i] is where field i lives; the slots that are not fields of
     * FIELDS (the schema version) take the prototype's value. rec_direct false: call it. */
    bool rec_direct;
    Py_ssize_t rec_off[18];
    int rec_nextra;
    Py_ssize_t rec_extra_off[MAX_EXTRA_SLOTS];
    PyObject *rec_extra[MAX_EXTRA_SLOTS];
    bool failed;                /* a Python call failed while handling this event */
} Tracker;

/* pack.c: XaddPacker, natively */
extern PyTypeObject PackerType;

/* records.c */
int records_init(Tracker *t, PyObject *prototype);
void records_free(Tracker *t);

/* provided by module.c for the C layers */
void tr_log_broken(Tracker *t, const char *reason, const char *cls, const char *detail,
                   size_t pending);
void tr_publish(Tracker *t, Conn *c, Msg *m);
PyObject *tr_call(Tracker *t, PyObject *fn, PyObject *const *args, size_t n);
void tr_log(Tracker *t, const char *level, const char *event, const char *fmt, ...);

/* the events (track.c) */
void track_event(Tracker *t, const char *raw, size_t size);
void track_seed(Tracker *t, uint32_t tgid, int32_t fd, PyObject *client, int64_t mono);
void track_finish(Tracker *t, Conn *c, int64_t ts);
Conn *track_find(Tracker *t, uint64_t key);
void track_free_all(Tracker *t);
Py_ssize_t track_consume(Tracker *t, uint64_t *cons_pos, const uint64_t *prod_pos,
                         const char *data, uint64_t mask, Py_ssize_t limit);

#endif
