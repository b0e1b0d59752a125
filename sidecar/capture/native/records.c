/* Records from finished exchanges: the port of ConnectionTracker._publish and of the Exchange
 * fields httpstream.py fills, as `Record`s (sidecar/contract/record.py) made by writing their
 * slots, with repeated header pairs, targets and versions shared. */
#include "hot.h"

#include <stdio.h>
#include <string.h>

#include "structmember.h"

/* Record's fields, passed by keyword (sidecar/contract/record.py) */
static const char *const FIELDS[] = {
    "ts_ns", "conn", "seq", "client", "method", "target", "version", "headers", "body",
    "body_len", "truncated", "status", "resp_headers", "resp_body", "resp_body_len",
    "resp_truncated", "latency_us", "tls",
};
#define NFIELDS (sizeof(FIELDS) / sizeof(FIELDS[0]))

static PyObject *text(const char *p, size_t n)
{
    return PyUnicode_DecodeLatin1(n ? p : "", (Py_ssize_t)n, NULL);
}

static uint64_t mix(const char *p, size_t n, uint64_t h)
{ /* a quick hash of a short byte string, eight bytes at a time */
    uint64_t w;
    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0x9E3779B97F4A7C15ull;
        h ^= h >> 29;
    }
    w = 0;
    memcpy(&w, p, n);
    h = (h ^ w ^ ((uint64_t)n << 56)) * 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 32);
}

/* The cached object for these bytes, or NULL (then *slot is where a new one goes). */
static PyObject *cache_get(CacheSlot *cache, const char *a, size_t na, const char *b, size_t nb,
                           CacheSlot **slot)
{
    *slot = NULL;
    if (na + nb > CACHE_MAX)
        return NULL;
    uint64_t h = mix(b, nb, mix(a, na, 0x2545F4914F6CDD1Dull) + na);
    CacheSlot *c = &cache[h & (CACHE_SLOTS - 1)];
    *slot = c;
    if (c->obj != NULL && c->len == na + nb && c->split == na && memcmp(c->bytes, a, na) == 0
        && memcmp(c->bytes + na, b, nb) == 0) {
        Py_INCREF(c->obj);
        return c->obj;
    }
    return NULL;
}

static void cache_put(CacheSlot *c, const char *a, size_t na, const char *b, size_t nb,
                      PyObject *obj)
{
    if (c == NULL)
        return;
    Py_XSETREF(c->obj, Py_NewRef(obj));
    memcpy(c->bytes, a, na);
    memcpy(c->bytes + na, b, nb);
    c->len = (uint32_t)(na + nb);
    c->split = (uint32_t)na;
}

static void cache_clear(CacheSlot *cache)
{
    if (cache == NULL)
        return;
    for (size_t i = 0; i < CACHE_SLOTS; i++)
        Py_CLEAR(cache[i].obj);
}

/* A short string (target, version) as a str, shared while it repeats. */
static PyObject *short_text(Tracker *t, const char *p, size_t n)
{
    CacheSlot *slot;
    PyObject *s = cache_get(t->strs, p, n, "", 0, &slot);
    if (s != NULL)
        return s;
    s = text(p, n);
    if (s != NULL)
        cache_put(slot, p, n, "", 0, s);
    return s;
}

static PyObject *header_list(Tracker *t, const Hdrs *hs)
{
    PyObject *list = PyList_New((Py_ssize_t)hs->n);
    if (list == NULL)
        return NULL;
    for (size_t i = 0; i < hs->n; i++) {
        const Pair *p = &hs->v[i];
        const char *name = hs->bytes.p + p->noff, *value = hs->bytes.p + p->voff;
        CacheSlot *slot;
        PyObject *pair = cache_get(t->pairs, name, p->nlen, value, p->vlen, &slot);
        if (pair == NULL) {
            PyObject *n = text(name, p->nlen), *v = text(value, p->vlen);
            pair = n && v ? PyTuple_Pack(2, n, v) : NULL;
            Py_XDECREF(n);
            Py_XDECREF(v);
            if (pair == NULL) {
                Py_DECREF(list);
                return NULL;
            }
            cache_put(slot, name, p->nlen, value, p->vlen, pair);
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, pair);
    }
    return list;
}

static PyObject *body_bytes(Tracker *t, const Buf *b)
{
    if (b->len == 0) {
        Py_INCREF(t->empty_bytes);
        return t->empty_bytes;
    }
    return PyBytes_FromStringAndSize(b->p, (Py_ssize_t)b->len);
}

static PyObject *method_name(Tracker *t, uint8_t method)
{
    const char *name = llhttp_method_name(method);
    if (method >= 64)
        return text(name, strlen(name));
    if (t->methods[method] == NULL) {
        t->methods[method] = text(name, strlen(name));
        if (t->methods[method] == NULL)
            return NULL;
        PyUnicode_InternInPlace(&t->methods[method]);
    }
    return Py_NewRef(t->methods[method]);
}

/* How records are made: by their slots when Record is the plain slots dataclass it is today
 * (checked here), else by calling the class with keywords. */
static int record_layout(Tracker *t, PyObject *prototype)
{
    PyTypeObject *tp = (PyTypeObject *)t->record_cls;
    t->rec_direct = false;
    if (!PyType_Check(t->record_cls) || !Py_IS_TYPE(prototype, tp) || tp->tp_dictoffset != 0
        || PyObject_HasAttrString(t->record_cls, "__post_init__"))
        return 0;
    PyObject *slots = PyObject_GetAttrString(t->record_cls, "__slots__");
    PyObject *seq = slots ? PySequence_Fast(slots, "__slots__") : NULL;
    Py_XDECREF(slots);
    if (seq == NULL) {
        PyErr_Clear();
        return 0;
    }
    bool ok = true;
    int found = 0;
    for (Py_ssize_t i = 0; ok && i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *name = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *d = PyObject_GetAttr(t->record_cls, name);
        if (d == NULL || !Py_IS_TYPE(d, &PyMemberDescr_Type)) {
            PyErr_Clear();
            Py_XDECREF(d);
            ok = false;
            break;
        }
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        Py_ssize_t off = m->offset;
        ok = m->type == T_OBJECT_EX && !(m->flags & READONLY);
        Py_DECREF(d);
        size_t f = 0;
        while (f < NFIELDS && PyUnicode_CompareWithASCIIString(name, FIELDS[f]) != 0)
            f++;
        if (!ok)
            break;
        if (f < NFIELDS) {
            t->rec_off[f] = off;
            found++;
            continue;
        }
        /* a slot the tracker does not fill: the prototype's value, if immutable */
        PyObject *v = *(PyObject **)((char *)prototype + off);
        ok = t->rec_nextra < MAX_EXTRA_SLOTS && v != NULL
             && (PyLong_CheckExact(v) || PyUnicode_CheckExact(v) || PyBytes_CheckExact(v)
                 || PyBool_Check(v) || v == Py_None);
        if (ok) {
            t->rec_extra_off[t->rec_nextra] = off;
            t->rec_extra[t->rec_nextra++] = Py_NewRef(v);
        }
    }
    Py_DECREF(seq);
    t->rec_direct = ok && found == (int)NFIELDS;
    return 0;
}

static PyObject *make_record(Tracker *t, PyObject **v)
{
    if (!t->rec_direct) {
        PyObject *rec = PyObject_Vectorcall(t->record_cls, v, 0, t->kwnames);
        for (size_t i = 0; i < NFIELDS; i++)
            Py_DECREF(v[i]);
        return rec;
    }
    PyTypeObject *tp = (PyTypeObject *)t->record_cls;
    PyObject *rec = tp->tp_alloc(tp, 0);
    if (rec == NULL) {
        for (size_t i = 0; i < NFIELDS; i++)
            Py_DECREF(v[i]);
        return NULL;
    }
    for (size_t i = 0; i < NFIELDS; i++)
        *(PyObject **)((char *)rec + t->rec_off[i]) = v[i]; /* the reference is the record's */
    for (int i = 0; i < t->rec_nextra; i++)
        *(PyObject **)((char *)rec + t->rec_extra_off[i]) = Py_NewRef(t->rec_extra[i]);
    /* A record and its header lists hold only strs, ints, bytes and tuples of strs: they can
     * be in no reference cycle, so the cycle collector need not scan them. Thousands of them
     * wait in the publisher's queue under load, and its collections rescanned each one. */
    PyObject_GC_UnTrack(rec);
    for (size_t i = 0; i < NFIELDS; i++)
        if (PyList_CheckExact(v[i]))
            PyObject_GC_UnTrack(v[i]);
    return rec;
}

/* _publish: the Record of one finished exchange; m is freed. */
void tr_publish(Tracker *t, Conn *c, Msg *m)
{
    int64_t latency = 0;
    if (m->status)
        latency = (m->resp_end > m->req_end ? m->resp_end - m->req_end : 0) / 1000;
    char version[8] = {(char)('0' + m->vmaj), '.', (char)('0' + m->vmin)};
    int vlen = 3; /* llhttp reads one digit each */
    if (m->vmaj > 9 || m->vmin > 9)
        vlen = snprintf(version, sizeof(version), "%u.%u", (unsigned)m->vmaj, (unsigned)m->vmin);
    PyObject *v[NFIELDS] = {
        PyLong_FromLongLong(m->start + t->offset),
        Py_NewRef(c->id),
        PyLong_FromUnsignedLongLong(c->seq),
        Py_NewRef(c->peer),
        method_name(t, m->method),
        short_text(t, m->url.p, m->url.len),
        short_text(t, version, (size_t)vlen),
        header_list(t, &m->headers),
        body_bytes(t, &m->ex_body),
        PyLong_FromUnsignedLongLong(m->ex_body_len),
        PyBool_FromLong(m->ex_truncated),
        PyLong_FromLong(m->status),
        header_list(t, &m->resp_headers),
        body_bytes(t, &m->resp_body),
        PyLong_FromUnsignedLongLong(m->resp_body_len),
        PyBool_FromLong(m->resp_truncated),
        PyLong_FromLongLong(latency),
        PyBool_FromLong(c->tls),
    };
    msg_free(t, m);
    c->seq++;
    t->counts[C_REQUESTS]++;
    bool ok = true;
    for (size_t i = 0; i < NFIELDS; i++)
        ok = ok && v[i] != NULL;
    PyObject *rec = NULL;
    if (ok) {
        rec = make_record(t, v); /* takes the references */
    } else {
        for (size_t i = 0; i < NFIELDS; i++)
            Py_XDECREF(v[i]);
    }
    if (rec == NULL || PyList_Append(t->batch, rec) < 0)
        t->failed = true;
    Py_XDECREF(rec);
}

int records_init(Tracker *t, PyObject *prototype)
{
    t->empty_bytes = PyBytes_FromStringAndSize("", 0);
    t->kwnames = PyTuple_New(NFIELDS);
    if (t->empty_bytes == NULL || t->kwnames == NULL)
        return -1;
    for (size_t i = 0; i < NFIELDS; i++) {
        PyObject *name = PyUnicode_InternFromString(FIELDS[i]);
        if (name == NULL)
            return -1;
        PyTuple_SET_ITEM(t->kwnames, (Py_ssize_t)i, name);
    }
    t->pairs = xrealloc(NULL, 2 * CACHE_SLOTS * sizeof(CacheSlot));
    memset(t->pairs, 0, 2 * CACHE_SLOTS * sizeof(CacheSlot));
    t->strs = t->pairs + CACHE_SLOTS;
    return record_layout(t, prototype);
}

void records_free(Tracker *t)
{
    for (int i = 0; i < 64; i++)
        Py_CLEAR(t->methods[i]);
    for (int i = 0; i < t->rec_nextra; i++)
        Py_CLEAR(t->rec_extra[i]);
    cache_clear(t->pairs);
    cache_clear(t->strs);
    free(t->pairs);
    t->pairs = t->strs = NULL;
    Py_CLEAR(t->empty_bytes);
    Py_CLEAR(t->kwnames);
}
