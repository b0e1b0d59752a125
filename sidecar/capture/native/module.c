/* sidecar.capture._native: the Python type `Tracker` around the native hot path (records.c
 * makes its Records, pack.c is the publisher's Packer).
 *
 * Python sees a tracker that eats ring-buffer records (one at a time with feed(), or straight
 * from the ring buffer's memory mapping with consume()) and hands finished records to
 * ``emit(list)`` in batches. Counters are kept here and taken by the Python wrapper
 * (sidecar/capture/native.py) once a second; log lines and the rare I/O (the peer of a
 * connection accepted without an address, the bytes of a sendfile) are Python calls. */
#include "hot.h"

#include <stdarg.h>
#include <string.h>

#define HANDOVER 256 /* records per emit() call during a long consume */

static const char *const COUNTER_NAMES[C_N][2] = {
    [C_REQUESTS] = {"requests", NULL},
    [C_BYTES_REQUEST] = {"bytes", "request"},
    [C_BYTES_RESPONSE] = {"bytes", "response"},
    [C_EVENTS] = {"events", NULL},
    [C_PE_INVALID_METHOD] = {"parse_errors", "invalid_method"},
    [C_PE_INVALID_REQUEST] = {"parse_errors", "invalid_request"},
    [C_PE_INVALID_RESPONSE] = {"parse_errors", "invalid_response"},
    [C_PE_HEADER_TOO_LARGE] = {"parse_errors", "header_too_large"},
    [C_PE_UPGRADED] = {"parse_errors", "upgraded"},
    [C_PE_UNPAIRED_RESPONSE] = {"parse_errors", "unpaired_response"},
    [C_PE_LOST_BYTES] = {"parse_errors", "lost_bytes"},
    [C_PE_TLS] = {"parse_errors", "tls"},
    [C_PE_TLS_UNDECRYPTED] = {"parse_errors", "tls_undecrypted"},
    [C_PE_INTERNAL] = {"parse_errors", "internal"},
    [C_INC_CLOSED] = {"incomplete", "closed"},
    [C_INC_LOST_BYTES] = {"incomplete", "lost_bytes"},
    [C_INC_MID_CONNECTION] = {"incomplete", "mid_connection"},
    [C_INC_SENDFILE_UNREADABLE] = {"incomplete", "sendfile_unreadable"},
    [C_TRUNC_REQUEST] = {"truncated_bodies", "request"},
    [C_TRUNC_RESPONSE] = {"truncated_bodies", "response"},
    [C_UNANSWERED] = {"unanswered", NULL},
    [C_LOST_BYTES] = {"lost_bytes", NULL},
    [C_OPENED_ACCEPTED] = {"connections_opened", "accepted"},
    [C_OPENED_SEEDED] = {"connections_opened", "seeded"},
    [C_OPENED_RESUMED] = {"connections_opened", "resumed"},
    [C_EXPIRED] = {"connections_expired", NULL},
};

/* -- calls into Python ------------------------------------------------------------------------ */
PyObject *tr_call(Tracker *t, PyObject *fn, PyObject *const *args, size_t n)
{
    (void)t;
    for (size_t i = 0; i < n; i++)
        if (args[i] == NULL)
            return NULL;
    return PyObject_Vectorcall(fn, args, n, NULL);
}

static void log_call(Tracker *t, const char *level, const char *event, PyObject *kwargs)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb); /* a log line never changes what is being handled */
    PyObject *fn = PyObject_GetAttrString(t->log, level);
    PyObject *args = fn ? Py_BuildValue("(s)", event) : NULL;
    PyObject *res = args && kwargs ? PyObject_Call(fn, args, kwargs) : NULL;
    if (res == NULL)
        PyErr_WriteUnraisable(t->log);
    Py_XDECREF(res);
    Py_XDECREF(args);
    Py_XDECREF(fn);
    PyErr_Restore(type, value, tb);
}

void tr_log(Tracker *t, const char *level, const char *event, const char *fmt, ...)
{
    va_list va;
    va_start(va, fmt);
    PyObject *kwargs = Py_VaBuildValue(fmt, va);
    va_end(va);
    if (kwargs == NULL) {
        PyErr_WriteUnraisable(t->log);
        return;
    }
    log_call(t, level, event, kwargs);
    Py_DECREF(kwargs);
}

void tr_log_broken(Tracker *t, const char *reason, const char *cls, const char *detail,
                   size_t pending)
{ /* HttpConnectionParser._break's log line */
    PyObject *d = Py_None;
    Py_INCREF(d);
    if (cls != NULL) {
        PyObject *text = PyUnicode_DecodeLatin1(detail, (Py_ssize_t)strlen(detail), NULL);
        Py_DECREF(d);
        d = text ? PyUnicode_FromFormat("%s(%R)", cls, text) : NULL;
        Py_XDECREF(text);
        if (d == NULL) {
            PyErr_WriteUnraisable(t->log);
            return;
        }
    }
    tr_log(t, strcmp(reason, "upgraded") == 0 ? "info" : "warning", "http_stream_broken",
           "{s:s,s:N,s:n}", "reason", reason, "detail", d, "pending", (Py_ssize_t)pending);
}

/* Hand the records made so far to emit(list); false if it raised (counted, logged). */
static void handover(Tracker *t)
{
    if (PyList_GET_SIZE(t->batch) == 0)
        return;
    PyObject *batch = t->batch;
    t->batch = PyList_New(0);
    if (t->batch == NULL) { /* keep the old list: nothing is lost */
        t->batch = batch;
        PyErr_Clear();
        return;
    }
    PyObject *res = PyObject_CallOneArg(t->emit, batch);
    Py_DECREF(batch);
    if (res == NULL) {
        t->counts[C_PE_INTERNAL]++;
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        tr_log(t, "error", "capture.event_failed", "{s:O}", "exc_info", value ? value : Py_True);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
    }
    Py_XDECREF(res);
}

/* -- the type ------------------------------------------------------------------------------------- */
static int Tracker_init(Tracker *t, PyObject *args, PyObject *kw)
{
    static char *names[] = {"node", "max_body", "max_header_bytes", "idle_ns", "tls", "record",
                            "prototype", "emit", "read_sendfile", "find_peer", "peer", "decode",
                            "log", NULL};
    unsigned long long max_body, max_hdr;
    long long idle_ns;
    int tls;
    PyObject *node, *record, *prototype, *emit, *read_sendfile, *find_peer, *peer, *decode, *log;
    if (t->batch != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Tracker.__init__ called twice");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kw, "UKKLpOOOOOOOO:Tracker", names, &node, &max_body,
                                     &max_hdr, &idle_ns, &tls, &record, &prototype, &emit,
                                     &read_sendfile, &find_peer, &peer, &decode, &log))
        return -1;
    if (max_hdr == 0) {
        PyErr_Format(PyExc_ValueError, "max_header_bytes must be > 0, got %llu", max_hdr);
        return -1;
    }
    t->max_body = max_body;
    t->max_hdr = max_hdr;
    t->idle_ns = idle_ns;
    t->tls = tls;
    t->node = Py_NewRef(node);
    t->record_cls = Py_NewRef(record);
    t->emit = Py_NewRef(emit);
    t->read_sendfile = Py_NewRef(read_sendfile);
    t->find_peer = Py_NewRef(find_peer);
    t->peer = Py_NewRef(peer);
    t->decode = Py_NewRef(decode);
    t->log = Py_NewRef(log);
    t->batch = PyList_New(0);
    if (t->batch == NULL)
        return -1;
    return records_init(t, prototype);
}

static int Tracker_traverse(Tracker *t, visitproc visit, void *arg)
{
    Py_VISIT(t->node);
    Py_VISIT(t->record_cls);
    Py_VISIT(t->emit);
    Py_VISIT(t->read_sendfile);
    Py_VISIT(t->find_peer);
    Py_VISIT(t->peer);
    Py_VISIT(t->decode);
    Py_VISIT(t->log);
    Py_VISIT(t->batch);
    return 0;
}

static int Tracker_clear(Tracker *t)
{
    Py_CLEAR(t->node);
    Py_CLEAR(t->record_cls);
    Py_CLEAR(t->emit);
    Py_CLEAR(t->read_sendfile);
    Py_CLEAR(t->find_peer);
    Py_CLEAR(t->peer);
    Py_CLEAR(t->decode);
    Py_CLEAR(t->log);
    Py_CLEAR(t->batch);
    return 0;
}

static void Tracker_dealloc(Tracker *t)
{
    PyObject_GC_UnTrack(t);
    track_free_all(t);
    while (t->npool)
        msg_free(NULL, t->pool[--t->npool]);
    free(t->warned);
    records_free(t);
    Tracker_clear(t);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static bool ready(Tracker *t)
{
    if (t->batch == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Tracker.__init__ was not called");
        return false;
    }
    return true;
}

static PyObject *Tracker_feed(Tracker *t, PyObject *raw)
{
    Py_buffer view;
    if (!ready(t) || PyObject_GetBuffer(raw, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    track_event(t, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    handover(t);
    Py_RETURN_NONE;
}

static PyObject *Tracker_consume(Tracker *t, PyObject *args)
{
    PyObject *cons_o, *prod_o, *data_o;
    unsigned long long mask;
    Py_ssize_t limit;
    if (!ready(t) || !PyArg_ParseTuple(args, "OOOKn:consume", &cons_o, &prod_o, &data_o, &mask, &limit))
        return NULL;
    Py_buffer cons, prod, data;
    if (PyObject_GetBuffer(cons_o, &cons, PyBUF_WRITABLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(prod_o, &prod, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&cons);
        return NULL;
    }
    if (PyObject_GetBuffer(data_o, &data, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&cons);
        PyBuffer_Release(&prod);
        return NULL;
    }
    Py_ssize_t n = 0;
    if (cons.len < 8 || prod.len < 8 || (uint64_t)data.len < 2 * (mask + 1)) {
        PyErr_SetString(PyExc_ValueError, "consume(): positions of 8 bytes and a data area mapped "
                        "twice (2 * (mask + 1) bytes) are needed");
        n = -1;
    }
    while (n >= 0) { /* in slices, so records reach emit() while a big backlog is read */
        Py_ssize_t slice = limit > 0 && limit - n < HANDOVER ? limit - n : HANDOVER;
        Py_ssize_t got = track_consume(t, cons.buf, prod.buf, data.buf, mask, slice);
        n += got;
        handover(t);
        if (got < slice || (limit > 0 && n >= limit))
            break;
    }
    PyBuffer_Release(&cons);
    PyBuffer_Release(&prod);
    PyBuffer_Release(&data);
    return n < 0 ? NULL : PyLong_FromSsize_t(n);
}

static PyObject *Tracker_seed(Tracker *t, PyObject *args)
{
    unsigned int tgid;
    int fd;
    PyObject *client;
    long long mono;
    if (!ready(t) || !PyArg_ParseTuple(args, "IiUL:seed", &tgid, &fd, &client, &mono))
        return NULL;
    track_seed(t, tgid, fd, client, mono);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *key_tuple(const Conn *c)
{
    return Py_BuildValue("(Ii)", (unsigned)(c->key >> 32), (int)(uint32_t)c->key);
}

/* Finish the connections picked out by keep(); returns their keys. */
static PyObject *finish_where(Tracker *t, int64_t now, bool (*pick)(Tracker *, Conn *, void *),
                              void *arg, int counter)
{
    PyObject *keys = PyList_New(0);
    if (keys == NULL)
        return NULL;
    size_t n = 0, cap = 0;
    Conn **chosen = NULL;
    for (Conn *c = t->first; c; c = c->next) {
        if (!pick(t, c, arg))
            continue;
        if (PyErr_Occurred())
            break;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            chosen = xrealloc(chosen, cap * sizeof(Conn *));
        }
        chosen[n++] = c;
    }
    if (PyErr_Occurred()) {
        free(chosen);
        Py_DECREF(keys);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        PyObject *k = key_tuple(chosen[i]);
        if (k == NULL || PyList_Append(keys, k) < 0)
            PyErr_Clear();
        Py_XDECREF(k);
        track_finish(t, chosen[i], now);
        if (counter >= 0)
            t->counts[counter]++;
        if (t->failed) { /* a record could not be made: counted like a failed event */
            t->counts[C_PE_INTERNAL]++;
            t->failed = false;
            PyErr_Clear();
        }
    }
    free(chosen);
    handover(t);
    return keys;
}

static bool pick_idle(Tracker *t, Conn *c, void *arg)
{
    return *(int64_t *)arg - c->last_ns > t->idle_ns;
}

static PyObject *Tracker_expire(Tracker *t, PyObject *arg)
{
    long long now = PyLong_AsLongLong(arg);
    if (!ready(t) || (now == -1 && PyErr_Occurred()))
        return NULL;
    int64_t when = now;
    return finish_where(t, now, pick_idle, &when, C_EXPIRED);
}

typedef struct {
    PyObject *alive;
    uint32_t tgid;
    int known; /* -1: not asked yet; else alive(tgid) for the last tgid asked */
} Gone;

static bool pick_gone(Tracker *t, Conn *c, void *arg)
{
    (void)t;
    Gone *g = arg;
    uint32_t tgid = (uint32_t)(c->key >> 32);
    if (g->known < 0 || g->tgid != tgid) {
        PyObject *res = PyObject_CallFunction(g->alive, "I", (unsigned)tgid);
        if (res == NULL)
            return true;
        g->known = PyObject_IsTrue(res);
        Py_DECREF(res);
        if (g->known < 0)
            return true;
        g->tgid = tgid;
    }
    return !g->known;
}

static PyObject *Tracker_forget(Tracker *t, PyObject *args)
{
    Gone g = {NULL, 0, -1};
    long long now;
    if (!ready(t) || !PyArg_ParseTuple(args, "OL:forget", &g.alive, &now))
        return NULL;
    return finish_where(t, now, pick_gone, &g, -1);
}

static bool pick_all(Tracker *t, Conn *c, void *arg)
{
    (void)t, (void)c, (void)arg;
    return true;
}

static PyObject *Tracker_flush(Tracker *t, PyObject *arg)
{
    long long now = PyLong_AsLongLong(arg);
    if (!ready(t) || (now == -1 && PyErr_Occurred()))
        return NULL;
    PyObject *keys = finish_where(t, now, pick_all, NULL, -1);
    if (keys == NULL)
        return NULL;
    Py_DECREF(keys);
    Py_RETURN_NONE;
}

static PyObject *Tracker_take_counts(Tracker *t, PyObject *Py_UNUSED(ignored))
{
    PyObject *out = PyTuple_New(C_N);
    if (out == NULL)
        return NULL;
    for (int i = 0; i < C_N; i++) {
        PyObject *n = PyLong_FromUnsignedLongLong(t->counts[i]);
        if (n == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, n);
    }
    memset(t->counts, 0, sizeof(t->counts));
    t->nconns_taken = t->nconns;
    return out;
}

static Py_ssize_t Tracker_len(Tracker *t) { return (Py_ssize_t)t->nconns; }

static PyObject *Tracker_get_rare(Tracker *t, void *closure)
{ /* counts other than the per-request ones are waiting to be taken */
    (void)closure;
    for (int i = C_EVENTS + 1; i < C_N; i++)
        if (t->counts[i])
            Py_RETURN_TRUE;
    return PyBool_FromLong(t->nconns != t->nconns_taken);
}

static PyObject *Tracker_get_offset(Tracker *t, void *closure)
{
    (void)closure;
    return PyLong_FromLongLong(t->offset);
}

static int Tracker_set_offset(Tracker *t, PyObject *v, void *closure)
{
    (void)closure;
    long long off = v ? PyLong_AsLongLong(v) : 0;
    if (v == NULL || (off == -1 && PyErr_Occurred())) {
        if (v == NULL)
            PyErr_SetString(PyExc_AttributeError, "offset cannot be deleted");
        return -1;
    }
    t->offset = off;
    return 0;
}

static PyMethodDef Tracker_methods[] = {
    {"feed", (PyCFunction)Tracker_feed, METH_O, "feed(raw): one ring-buffer record (bytes-like)."},
    {"consume", (PyCFunction)Tracker_consume, METH_VARARGS,
     "consume(consumer_pos, producer_pos, data, mask, limit) -> records handled.\n\n"
     "Walks a BPF ring buffer through its mapping as RingBuffer.consume does: the two positions "
     "are 8-byte buffers (the consumer's writable), data is the data area mapped twice. Stops at "
     "a record still being written, when caught up, or after limit records (0: no limit)."},
    {"seed", (PyCFunction)Tracker_seed, METH_VARARGS,
     "seed(tgid, fd, client, start_mono_ns): a connection open before capture started."},
    {"expire", (PyCFunction)Tracker_expire, METH_O,
     "expire(now_mono_ns) -> keys of the connections idle too long, now finished."},
    {"forget", (PyCFunction)Tracker_forget, METH_VARARGS,
     "forget(alive, now_mono_ns) -> keys of the connections of processes gone, now finished."},
    {"flush", (PyCFunction)Tracker_flush, METH_O, "flush(now_mono_ns): finish every connection."},
    {"take_counts", (PyCFunction)Tracker_take_counts, METH_NOARGS,
     "take_counts() -> the counts since the last call, in COUNTER_NAMES order."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Tracker_getset[] = {
    {"rare", (getter)Tracker_get_rare, NULL,
     "True when counts other than requests, bytes and events wait to be taken (take_counts), "
     "or the number of connections changed since",
     NULL},
    {"offset", (getter)Tracker_get_offset, (setter)Tracker_set_offset,
     "wall-clock minus monotonic clock, ns: kernel timestamps + offset = wall time", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods Tracker_as_sequence = {.sq_length = (lenfunc)Tracker_len};

static PyTypeObject TrackerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sidecar.capture._native.Tracker",
    .tp_basicsize = sizeof(Tracker),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Ring-buffer records -> connections -> HTTP/1.x exchanges -> records, natively.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Tracker_init,
    .tp_dealloc = (destructor)Tracker_dealloc,
    .tp_traverse = (traverseproc)Tracker_traverse,
    .tp_clear = (inquiry)Tracker_clear,
    .tp_methods = Tracker_methods,
    .tp_getset = Tracker_getset,
    .tp_as_sequence = &Tracker_as_sequence,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "sidecar.capture._native",
    "The native hot path of rewind-capture (see sidecar/capture/native.py).", -1, NULL, NULL,
    NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void)
{
    if (PyType_Ready(&TrackerType) < 0 || PyType_Ready(&PackerType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    PyObject *names = PyTuple_New(C_N);
    if (names == NULL)
        goto fail;
    for (int i = 0; i < C_N; i++) {
        PyObject *item = COUNTER_NAMES[i][1]
                             ? Py_BuildValue("(ss)", COUNTER_NAMES[i][0], COUNTER_NAMES[i][1])
                             : Py_BuildValue("(sO)", COUNTER_NAMES[i][0], Py_None);
        if (item == NULL) {
            Py_DECREF(names);
            goto fail;
        }
        PyTuple_SET_ITEM(names, i, item);
    }
    if (PyModule_AddObject(m, "COUNTER_NAMES", names) < 0) {
        Py_DECREF(names);
        goto fail;
    }
    if (PyModule_AddStringConstant(m, "LLHTTP_VERSION", "" Py_STRINGIFY(LLHTTP_VERSION_MAJOR) "."
                                   Py_STRINGIFY(LLHTTP_VERSION_MINOR) "."
                                   Py_STRINGIFY(LLHTTP_VERSION_PATCH)) < 0)
        goto fail;
    if (PyModule_AddObjectRef(m, "Tracker", (PyObject *)&TrackerType) < 0
        || PyModule_AddObjectRef(m, "Packer", (PyObject *)&PackerType) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
