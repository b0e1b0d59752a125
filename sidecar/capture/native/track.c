/* Kernel events -> per-connection byte streams -> exchanges, and the walk over the ring buffer.
 *
 * The port of sidecar/capture/conntrack.py (ConnectionTracker; read its docstring for offsets,
 * lost bytes and TLS), of decode() in sidecar/capture/events.py and of RingBuffer.consume in
 * sidecar/capture/ringbuf.py. Connections live in a hash table keyed by (tgid << 32 | fd) and in
 * a list in the order they were opened, the order of the reference's dict. */
#include "hot.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* struct event (bpf/capture.h), the fixed part: 80 bytes, little-endian */
enum { EV_ACCEPT = 1, EV_DATA = 2, EV_CLOSE = 3, EV_SENDFILE = 4, EV_TLS_DATA = 5 };
#define HEADER_SIZE 80

typedef struct {
    uint64_t ts, pos, total, aux;
    int64_t aux2;
    uint32_t tgid;
    int32_t fd;
    uint32_t len;
    uint16_t kind, dir, family, port;
    const uint8_t *addr;
    const char *raw; /* the whole record, for the Python callbacks that want an Event */
    size_t size;
} Ev;

static void decode(Ev *ev, const char *raw, size_t size)
{
    memcpy(&ev->ts, raw + 0, 8);
    memcpy(&ev->pos, raw + 8, 8);
    memcpy(&ev->total, raw + 16, 8);
    memcpy(&ev->aux, raw + 24, 8);
    memcpy(&ev->aux2, raw + 32, 8);
    memcpy(&ev->tgid, raw + 40, 4);
    memcpy(&ev->fd, raw + 44, 4);
    memcpy(&ev->len, raw + 48, 4);
    memcpy(&ev->kind, raw + 52, 2);
    memcpy(&ev->dir, raw + 54, 2);
    memcpy(&ev->family, raw + 56, 2);
    memcpy(&ev->port, raw + 58, 2);
    ev->addr = (const uint8_t *)raw + 60;
    ev->raw = raw;
    ev->size = size;
}

static uint64_t key_of(uint32_t tgid, int32_t fd) { return ((uint64_t)tgid << 32) | (uint32_t)fd; }

/* -- the table -------------------------------------------------------------------------------- */
static size_t bucket(const Tracker *t, uint64_t key)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (t->nbuckets - 1);
}

Conn *track_find(Tracker *t, uint64_t key)
{
    if (!t->nbuckets)
        return NULL;
    for (Conn *c = t->table[bucket(t, key)]; c; c = c->hnext)
        if (c->key == key)
            return c;
    return NULL;
}

static void table_insert(Tracker *t, Conn *c)
{
    if (t->nconns + 1 > t->nbuckets / 4 * 3) {
        size_t old = t->nbuckets;
        Conn **was = t->table;
        t->nbuckets = old ? old * 2 : 1024;
        t->table = xrealloc(NULL, t->nbuckets * sizeof(Conn *));
        memset(t->table, 0, t->nbuckets * sizeof(Conn *));
        for (size_t i = 0; i < old; i++) {
            for (Conn *x = was[i], *next; x; x = next) {
                next = x->hnext;
                size_t b = bucket(t, x->key);
                x->hnext = t->table[b];
                t->table[b] = x;
            }
        }
        free(was);
    }
    size_t b = bucket(t, c->key);
    c->hnext = t->table[b];
    t->table[b] = c;
    c->prev = t->last;
    c->next = NULL;
    if (t->last)
        t->last->next = c;
    else
        t->first = c;
    t->last = c;
    t->nconns++;
}

static void table_remove(Tracker *t, Conn *c)
{
    Conn **p = &t->table[bucket(t, c->key)];
    while (*p != c)
        p = &(*p)->hnext;
    *p = c->hnext;
    if (c->prev)
        c->prev->next = c->next;
    else
        t->first = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        t->last = c->prev;
    t->nconns--;
}

static void conn_free(Conn *c)
{
    http_free(&c->http);
    Py_XDECREF(c->id);
    Py_XDECREF(c->peer);
    free(c);
}

void track_free_all(Tracker *t)
{
    for (Conn *c = t->first, *next; c; c = next) {
        next = c->next;
        conn_free(c);
    }
    free(t->table);
    t->table = NULL;
    t->first = t->last = NULL;
    t->nbuckets = t->nconns = 0;
}

/* -- failures: a Python call that raised is counted and logged, as Capture._on_raw does ------- */
static void failed(Tracker *t)
{
    t->failed = true;
}

/* -- connection life -------------------------------------------------------------------------- */
static Conn *conn_open(Tracker *t, uint32_t tgid, int32_t fd, PyObject *client, int64_t mono,
                       int how)
{ /* _open; client: a new reference, taken */
    PyObject *id = PyUnicode_FromFormat("%U:%u:%d:%lld", t->node, (unsigned)tgid, (int)fd,
                                        (long long)(mono + t->offset));
    if (id == NULL) {
        Py_DECREF(client);
        failed(t);
        return NULL;
    }
    Conn *c = xrealloc(NULL, sizeof(Conn));
    memset(c, 0, sizeof(Conn));
    c->key = key_of(tgid, fd);
    c->id = id;
    c->peer = client;
    http_init(&c->http, t);
    c->last_ns = mono;
    c->synced = true;
    table_insert(t, c);
    t->counts[how]++;
    return c;
}

static bool warn_once(Tracker *t, uint32_t tgid)
{ /* True the first time for a process (the count goes on; the log line is not repeated) */
    uint64_t k = (uint64_t)tgid + 1;
    if (t->nwarned + 1 > t->warned_cap / 2) {
        size_t cap = t->warned_cap ? t->warned_cap * 2 : 64;
        uint64_t *was = t->warned, old = t->warned_cap;
        t->warned = xrealloc(NULL, cap * sizeof(uint64_t));
        memset(t->warned, 0, cap * sizeof(uint64_t));
        t->warned_cap = cap;
        t->nwarned = 0;
        for (size_t i = 0; i < old; i++) {
            if (was[i]) {
                size_t j = (size_t)(was[i] * 0x9E3779B97F4A7C15ull) & (cap - 1);
                while (t->warned[j])
                    j = (j + 1) & (cap - 1);
                t->warned[j] = was[i];
                t->nwarned++;
            }
        }
        free(was);
    }
    size_t j = (size_t)(k * 0x9E3779B97F4A7C15ull) & (t->warned_cap - 1);
    while (t->warned[j]) {
        if (t->warned[j] == k)
            return false;
        j = (j + 1) & (t->warned_cap - 1);
    }
    t->warned[j] = k;
    t->nwarned++;
    return true;
}

void track_finish(Tracker *t, Conn *c, int64_t ts)
{ /* _finish */
    table_remove(t, c);
    uint32_t tgid = (uint32_t)(c->key >> 32);
    if (c->tls_raw && t->tls) {
        t->counts[C_PE_TLS_UNDECRYPTED]++;
        if (warn_once(t, tgid))
            tr_log(t, "warning", "capture.tls_undecrypted", "{s:O,s:I,s:s}", "conn", c->id, "pid",
                   (unsigned)tgid, "hint",
                   "no plaintext came from libssl for this TLS connection: see "
                   "capture.tls_unsupported and docs/capture.md, Limits");
    }
    http_close(&c->http, ts);
    Msg *m;
    while ((m = http_pop_ready(&c->http)) != NULL)
        tr_publish(t, c, m);
    while ((m = http_pop_any(&c->http)) != NULL) {
        if (m->status == 0)
            t->counts[C_UNANSWERED]++;
        tr_publish(t, c, m);
    }
    conn_free(c);
}

void track_seed(Tracker *t, uint32_t tgid, int32_t fd, PyObject *client, int64_t mono)
{
    if (track_find(t, key_of(tgid, fd)) != NULL)
        return;
    Py_INCREF(client);
    Conn *c = conn_open(t, tgid, fd, client, mono, C_OPENED_SEEDED);
    if (c != NULL)
        c->synced = false;
}

static Conn *get(Tracker *t, const Ev *ev)
{ /* _get: state expired (or seeded after its first bytes): start again */
    Conn *c = track_find(t, key_of(ev->tgid, ev->fd));
    if (c != NULL)
        return c;
    PyObject *args[2] = {PyLong_FromUnsignedLong(ev->tgid), PyLong_FromLong(ev->fd)};
    PyObject *client = tr_call(t, t->find_peer, args, 2);
    Py_XDECREF(args[0]);
    Py_XDECREF(args[1]);
    if (client == NULL)
        return NULL;
    c = conn_open(t, ev->tgid, ev->fd, client, (int64_t)ev->ts, C_OPENED_RESUMED);
    if (c != NULL) {
        c->expected[0] = c->expected[1] = -1; /* unknown until each direction's next bytes */
        c->synced = false;
    }
    return c;
}

static void to_tls(Tracker *t, Conn *c)
{ /* _to_tls: from now on the connection is parsed from the plaintext of its libssl calls */
    c->tls = true;
    c->tls_raw = false;
    http_free(&c->http);
    http_init(&c->http, t);
    c->expected[0] = c->expected[1] = c->synced ? 0 : -1;
}

static bool lost(Tracker *t, Conn *c, unsigned d, int64_t nbytes, int64_t ts)
{ /* _lost; false where the reference raises (a negative count) */
    if (nbytes < 0) {
        PyErr_Format(PyExc_ValueError, "Counters can only be incremented by non-negative amounts.");
        failed(t);
        return false;
    }
    t->counts[C_LOST_BYTES] += (uint64_t)nbytes;
    tr_log(t, "warning", "capture.lost_bytes", "{s:O,s:s,s:L}", "conn", c->id, "direction",
           d == 0 ? "request" : "response", "bytes", (long long)nbytes);
    http_lost(&c->http, d == 0, (uint64_t)nbytes, ts);
    c->expected[d] += nbytes;
    return true;
}

static bool starts_tls(Tracker *t, Conn *c, uint32_t tgid, unsigned d, const char *data, size_t n)
{ /* _starts_tls: the first bytes read are a TLS record header (type 0x14..0x17, major 3) */
    const unsigned char *u = (const unsigned char *)data;
    if (d != 0 || c->expected[0] > 0 || n == 0 || u[0] < 0x14 || u[0] > 0x17 || (n > 1 && u[1] != 3))
        return false;
    c->tls_raw = true;
    if (!t->tls) {
        t->counts[C_PE_TLS]++;
        if (warn_once(t, tgid))
            tr_log(t, "warning", "capture.tls_connection", "{s:O,s:I,s:s}", "conn", c->id, "pid",
                   (unsigned)tgid, "hint", "looks like TLS; run with --tls");
    }
    return true;
}

static void publish_ready(Tracker *t, Conn *c)
{
    Msg *m;
    if (c->http.paired)
        while ((m = http_pop_ready(&c->http)) != NULL)
            tr_publish(t, c, m);
}

static void on_data(Tracker *t, Conn *c, const Ev *ev, const char *data, size_t n)
{ /* _on_data */
    if (c == NULL && (c = get(t, ev)) == NULL)
        return;
    unsigned d = ev->dir;
    int64_t *expected = c->expected;
    int64_t ts = (int64_t)ev->ts;
    if (ev->kind != EV_TLS_DATA
        && (c->tls || c->tls_raw
            || (d == 0 && expected[0] <= 0 && starts_tls(t, c, ev->tgid, d, data, n)))) {
        if (!c->tls) { /* ciphertext: keep the offsets, parse nothing */
            if (d > 1) {
                PyErr_SetString(PyExc_IndexError, "list index out of range");
                failed(t);
                return;
            }
            expected[d] = (int64_t)(ev->pos + n);
        }
        return;
    }
    if (d > 1) {
        PyErr_SetString(PyExc_IndexError, "list index out of range");
        failed(t);
        return;
    }
    if (expected[d] < 0) /* first bytes of a resumed connection in this direction */
        expected[d] = (int64_t)ev->pos;
    int64_t gap = (int64_t)ev->pos - expected[d];
    if (gap > 0) {
        if (!lost(t, c, d, gap, ts))
            return;
    } else if (gap < 0) { /* overlap: cannot happen with one writer per direction */
        uint64_t k = (uint64_t)-gap;
        if (k >= n)
            k = n;
        data += k;
        n -= k;
    }
    expected[d] += (int64_t)n;
    c->last_ns = ts;
    if (!n)
        return;
    t->counts[d == 0 ? C_BYTES_REQUEST : C_BYTES_RESPONSE] += n;
    if (d == 0) {
        c->synced = true;
        http_feed_request(&c->http, data, n, ts);
    } else if (!c->synced) {
        t->counts[C_INC_MID_CONNECTION]++;
    } else {
        http_feed_response(&c->http, data, n, ts);
        publish_ready(t, c);
    }
}

/* "ip:port" of an IPv4 (or IPv4-mapped) peer; NULL: ask events.peer() (IPv6, no address). */
static PyObject *peer_v4(const Ev *ev)
{
    const uint8_t *a = ev->addr;
    if (ev->family == 10) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, mapped, 12) != 0)
            return NULL;
        a += 12;
    } else if (ev->family != 2) {
        return PyUnicode_FromStringAndSize("", 0);
    }
    return PyUnicode_FromFormat("%u.%u.%u.%u:%u", a[0], a[1], a[2], a[3], (unsigned)ev->port);
}

static void on_accept(Tracker *t, const Ev *ev)
{
    Conn *old = track_find(t, key_of(ev->tgid, ev->fd));
    if (old != NULL) /* its close was lost: finish the old one first */
        track_finish(t, old, (int64_t)ev->ts);
    PyObject *client = peer_v4(ev);
    if (client == NULL && !PyErr_Occurred()) {
        PyObject *args[3] = {PyLong_FromLong(ev->family),
                             PyBytes_FromStringAndSize((const char *)ev->addr, 16),
                             PyLong_FromLong(ev->port)};
        client = tr_call(t, t->peer, args, 3);
        for (int i = 0; i < 3; i++)
            Py_XDECREF(args[i]);
    }
    if (client == NULL) {
        failed(t);
        return;
    }
    int empty = PyObject_Not(client);
    if (empty) {
        Py_DECREF(client);
        PyObject *args[2] = {PyLong_FromUnsignedLong(ev->tgid), PyLong_FromLong(ev->fd)};
        client = tr_call(t, t->find_peer, args, 2);
        Py_XDECREF(args[0]);
        Py_XDECREF(args[1]);
        if (client == NULL)
            return;
    }
    conn_open(t, ev->tgid, ev->fd, client, (int64_t)ev->ts, C_OPENED_ACCEPTED);
}

static void on_close(Tracker *t, const Ev *ev)
{
    Conn *c = track_find(t, key_of(ev->tgid, ev->fd));
    if (c == NULL)
        return;
    if (ev->aux && !c->tls) /* TLS in the kernel: final offsets are plaintext ones */
        to_tls(t, c);
    /* bytes counted by the kernel but never delivered, at the end of a stream */
    uint64_t final[2] = {ev->pos, ev->total};
    for (unsigned d = 0; d < 2; d++) {
        if (c->expected[d] >= 0 && (uint64_t)c->expected[d] < final[d] && !c->tls_raw)
            if (!lost(t, c, d, (int64_t)(final[d] - (uint64_t)c->expected[d]), (int64_t)ev->ts))
                return;
    }
    track_finish(t, c, (int64_t)ev->ts);
}

static void on_sendfile(Tracker *t, const Ev *ev)
{
    PyObject *raw = PyBytes_FromStringAndSize(ev->raw, (Py_ssize_t)ev->size);
    PyObject *event = raw ? tr_call(t, t->decode, &raw, 1) : NULL;
    Py_XDECREF(raw);
    PyObject *data = event ? tr_call(t, t->read_sendfile, &event, 1) : NULL;
    Py_XDECREF(event);
    if (data == NULL) {
        failed(t);
        return;
    }
    Py_buffer view = {0};
    bool got = data != Py_None && PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) == 0;
    if (data != Py_None && !got) {
        Py_DECREF(data);
        failed(t);
        return;
    }
    if (!got || (uint64_t)view.len != ev->total) {
        Conn *c = get(t, ev);
        if (c != NULL) {
            if (c->expected[1] < 0)
                c->expected[1] = (int64_t)ev->pos;
            if (lost(t, c, 1, (int64_t)(ev->pos + ev->total) - c->expected[1], (int64_t)ev->ts))
                t->counts[C_INC_SENDFILE_UNREADABLE]++;
        }
    } else {
        on_data(t, NULL, ev, view.buf, (size_t)view.len);
    }
    if (got)
        PyBuffer_Release(&view);
    Py_DECREF(data);
}

void track_event(Tracker *t, const char *raw, size_t size)
{ /* Capture._on_raw + decode + ConnectionTracker.on_event */
    t->counts[C_EVENTS]++;
    t->failed = false;
    if (size < HEADER_SIZE) {
        PyErr_Format(PyExc_ValueError, "unpack_from requires a buffer of at least %d bytes "
                     "for unpacking %d bytes at offset 0 (actual buffer size is %zu)",
                     HEADER_SIZE, HEADER_SIZE, size);
        failed(t);
    } else {
        Ev ev;
        decode(&ev, raw, size);
        size_t n = size - HEADER_SIZE < ev.len ? size - HEADER_SIZE : ev.len;
        const char *data = raw + HEADER_SIZE;
        switch (ev.kind) {
        case EV_DATA:
            on_data(t, NULL, &ev, data, n);
            break;
        case EV_TLS_DATA: {
            Conn *c = get(t, &ev);
            if (c == NULL)
                break;
            if (!c->tls)
                to_tls(t, c);
            on_data(t, c, &ev, data, n);
            break;
        }
        case EV_ACCEPT:
            on_accept(t, &ev);
            break;
        case EV_CLOSE:
            on_close(t, &ev);
            break;
        case EV_SENDFILE:
            on_sendfile(t, &ev);
            break;
        default:
            break;
        }
    }
    if (t->failed || PyErr_Occurred()) { /* a bug must not stop capture: count it, log it */
        t->counts[C_PE_INTERNAL]++;
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        if (value != NULL && tb != NULL)
            PyException_SetTraceback(value, tb);
        tr_log(t, "error", "capture.event_failed", "{s:O}", "exc_info", value ? value : Py_True);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        t->failed = false;
    }
}

/* -- the ring buffer (RingBuffer.consume) -------------------------------------------------------- */
#define BUSY_BIT (1u << 31)
#define DISCARD_BIT (1u << 30)
#define LEN_MASK (DISCARD_BIT - 1)

Py_ssize_t track_consume(Tracker *t, uint64_t *cons_pos, const uint64_t *prod_pos,
                         const char *data, uint64_t mask, Py_ssize_t limit)
{
    uint64_t cons = __atomic_load_n(cons_pos, __ATOMIC_RELAXED);
    Py_ssize_t n = 0;
    for (;;) {
        uint64_t prod = __atomic_load_n(prod_pos, __ATOMIC_ACQUIRE);
        if (cons >= prod)
            return n;
        while (cons < prod) {
            uint64_t off = cons & mask;
            uint32_t len = __atomic_load_n((const uint32_t *)(data + off), __ATOMIC_ACQUIRE);
            if (len & BUSY_BIT)
                return n;
            cons += ((len & LEN_MASK) + 8 + 7) & ~(uint64_t)7;
            if (!(len & DISCARD_BIT)) {
                track_event(t, data + off + 8, len & LEN_MASK);
                __atomic_store_n(cons_pos, cons, __ATOMIC_RELEASE);
                if (++n == limit)
                    return n;
            } else {
                __atomic_store_n(cons_pos, cons, __ATOMIC_RELEASE);
            }
        }
    }
}
