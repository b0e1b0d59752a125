/* The XADD of one record, RESP-encoded: the port of sidecar/contract/xadd.py (XaddPacker.pack),
 * byte for byte (tests/unit/test_native_pack.py holds the two together on generated records).
 *
 * Packer(prefix, names, fields, dumps, record): prefix is XaddPacker's command head
 * ("*N\r\n$4\r\nXADD..."), names the field names as bulk strings in xadd.FIELDS order (fields),
 * dumps orjson.dumps (the headers' JSON is orjson's, as in the reference: written here for lists
 * of latin-1 str pairs, asked of orjson otherwise), record the Record class (its instances are
 * read by their slots). pack(record) -> bytes; a record that cannot be encoded raises, as the
 * reference does. */
#include "hot.h"

#include <stdio.h>
#include <string.h>

#include "structmember.h"

/* xadd.FIELDS, and how each value is written (the reference's tuple in XaddPacker.pack) */
enum { K_INT, K_TEXT, K_JSON, K_BYTES, K_FLAG };
static const struct {
    const char *name;
    int kind;
} VALUES[] = {
    {"v", K_INT},           {"ts_ns", K_INT},         {"conn", K_TEXT},
    {"seq", K_INT},         {"client", K_TEXT},       {"method", K_TEXT},
    {"target", K_TEXT},     {"version", K_TEXT},      {"headers", K_JSON},
    {"body", K_BYTES},      {"body_len", K_INT},      {"truncated", K_FLAG},
    {"status", K_INT},      {"resp_headers", K_JSON}, {"resp_body", K_BYTES},
    {"resp_body_len", K_INT}, {"resp_truncated", K_FLAG}, {"latency_us", K_INT},
    {"tls", K_FLAG},
};
#define NVALUES ((int)(sizeof(VALUES) / sizeof(VALUES[0])))

typedef struct {
    PyObject_HEAD
    PyObject *prefix, *names, *dumps, *attrs;
    PyTypeObject *record;        /* records of this type are read by their slots */
    Py_ssize_t off[32];          /* where each value lives in such a record */
} Packer;

typedef struct { /* one value, ready to copy */
    const char *p;
    Py_ssize_t n;
    char digits[24];
    char head[24]; /* "$<n>\r\n" */
    int hlen;
    PyObject *owner;  /* a bytes object p points into, or NULL */
    Py_buffer view;   /* K_BYTES: the buffer p points into */
    bool has_view;
} Val;

/* n in decimal at w (at most 20 digits and a sign); returns the characters written. */
static int decimal(char *w, long long n)
{
    static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233"
                                "343536373839404142434445464748495051525354555657585960616263646566"
                                "676869707172737475767778798081828384858687888990919293949596979899";
    char tmp[24];
    int k = 24;
    unsigned long long u = n < 0 ? 0ull - (unsigned long long)n : (unsigned long long)n;
    while (u >= 100) {
        unsigned d = (unsigned)(u % 100) * 2;
        u /= 100;
        tmp[--k] = pairs[d + 1];
        tmp[--k] = pairs[d];
    }
    if (u >= 10) {
        tmp[--k] = pairs[u * 2 + 1];
        tmp[--k] = pairs[u * 2];
    } else {
        tmp[--k] = (char)('0' + u);
    }
    int len = 0;
    if (n < 0)
        w[len++] = '-';
    memcpy(w + len, tmp + k, (size_t)(24 - k));
    return len + 24 - k;
}

static int bulk_head(char *w, Py_ssize_t n)
{ /* "$<n>\r\n" */
    w[0] = '$';
    int len = 1 + decimal(w + 1, n);
    w[len++] = '\r';
    w[len++] = '\n';
    return len;
}

/* orjson.dumps(headers) for the usual value, a list of (name, value) pairs of str, into a new
 * bytes object: orjson's escapes (" \\ \b \t \n \f \r, other controls as \u00xx) and UTF-8
 * for the rest. NULL without an error for anything else (the caller asks orjson). */
static PyObject *json_pairs(PyObject *list)
{
    if (!PyList_CheckExact(list))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(list), size = 2;
    for (Py_ssize_t i = 0; i < n; i++) { /* room: every byte escaped as \u00xx at worst */
        PyObject *pair = PyList_GET_ITEM(list, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2)
            return NULL;
        for (int k = 0; k < 2; k++) {
            PyObject *str = PyTuple_GET_ITEM(pair, k);
            if (!PyUnicode_CheckExact(str) || PyUnicode_KIND(str) != PyUnicode_1BYTE_KIND)
                return NULL; /* beyond latin-1 (or not a str): orjson's UTF-8 and errors */
            size += 6 * PyUnicode_GET_LENGTH(str) + 3;
        }
        size += 3;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL)
        return NULL;
    static const char hex[] = "0123456789abcdef";
    char *w = PyBytes_AS_STRING(out);
    *w++ = '[';
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i)
            *w++ = ',';
        *w++ = '[';
        for (int k = 0; k < 2; k++) {
            PyObject *str = PyTuple_GET_ITEM(PyList_GET_ITEM(list, i), k);
            const unsigned char *p = PyUnicode_1BYTE_DATA(str);
            Py_ssize_t len = PyUnicode_GET_LENGTH(str);
            if (k)
                *w++ = ',';
            *w++ = '"';
            for (Py_ssize_t j = 0; j < len; j++) {
                unsigned char c = p[j];
                if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') { /* most bytes */
                    *w++ = (char)c;
                    continue;
                }
                if (c >= 0x80) { /* latin-1 code point -> two UTF-8 bytes */
                    *w++ = (char)(0xc0 | (c >> 6));
                    *w++ = (char)(0x80 | (c & 0x3f));
                } else if (c == '"' || c == '\\') {
                    *w++ = '\\';
                    *w++ = (char)c;
                } else if (c >= 0x20) {
                    *w++ = (char)c;
                } else {
                    *w++ = '\\';
                    switch (c) {
                    case '\b': *w++ = 'b'; break;
                    case '\t': *w++ = 't'; break;
                    case '\n': *w++ = 'n'; break;
                    case '\f': *w++ = 'f'; break;
                    case '\r': *w++ = 'r'; break;
                    default:
                        *w++ = 'u';
                        *w++ = '0';
                        *w++ = '0';
                        *w++ = hex[c >> 4];
                        *w++ = hex[c & 15];
                    }
                }
            }
            *w++ = '"';
        }
        *w++ = ']';
    }
    *w++ = ']';
    if (_PyBytes_Resize(&out, w - PyBytes_AS_STRING(out)) < 0)
        return NULL;
    return out;
}

static int value_of(Packer *pk, int i, PyObject *x, Val *v)
{
    switch (VALUES[i].kind) {
    case K_INT: { /* b"%d" % x */
        if (PyFloat_Check(x)) {
            PyObject *n = PyNumber_Long(x);
            if (n == NULL)
                return -1;
            v->owner = PyObject_Str(n);
            Py_DECREF(n);
        } else if (PyLong_Check(x)) {
            int overflow;
            long long n = PyLong_AsLongLongAndOverflow(x, &overflow);
            if (!overflow) {
                v->n = decimal(v->digits, n);
                v->p = v->digits;
                return 0;
            }
            v->owner = PyObject_Str(x);
        } else {
            PyErr_Format(PyExc_TypeError, "%%d format: a real number is required, not %.200s",
                         Py_TYPE(x)->tp_name);
            return -1;
        }
        if (v->owner == NULL)
            return -1;
        Py_SETREF(v->owner, PyUnicode_AsASCIIString(v->owner));
        if (v->owner == NULL)
            return -1;
        v->p = PyBytes_AS_STRING(v->owner);
        v->n = PyBytes_GET_SIZE(v->owner);
        return 0;
    }
    case K_TEXT: /* x.encode("latin-1") */
        if (!PyUnicode_Check(x)) {
            PyErr_Format(PyExc_AttributeError, "'%.200s' object has no attribute 'encode'",
                         Py_TYPE(x)->tp_name);
            return -1;
        }
        if (PyUnicode_KIND(x) == PyUnicode_1BYTE_KIND) {
            v->p = (const char *)PyUnicode_1BYTE_DATA(x);
            v->n = PyUnicode_GET_LENGTH(x);
            return 0;
        }
        v->owner = PyUnicode_AsLatin1String(x);
        break;
    case K_JSON:
        v->owner = json_pairs(x);
        if (v->owner == NULL && PyErr_Occurred())
            return -1;
        if (v->owner == NULL)
            v->owner = PyObject_CallOneArg(pk->dumps, x);
        if (v->owner != NULL && !PyBytes_Check(v->owner)) {
            PyErr_SetString(PyExc_TypeError, "dumps() did not return bytes");
            Py_CLEAR(v->owner);
        }
        break;
    case K_BYTES: /* %b: a bytes-like object */
        if (PyObject_GetBuffer(x, &v->view, PyBUF_SIMPLE) < 0) {
            PyErr_Format(PyExc_TypeError, "%%b requires a bytes-like object, or an object that "
                         "implements __bytes__, not '%.100s'", Py_TYPE(x)->tp_name);
            return -1;
        }
        v->has_view = true;
        v->p = v->view.buf;
        v->n = v->view.len;
        return 0;
    case K_FLAG: { /* b"1" if x else b"0" */
        int truth = PyObject_IsTrue(x);
        if (truth < 0)
            return -1;
        v->p = truth ? "1" : "0";
        v->n = 1;
        return 0;
    }
    }
    if (v->owner == NULL)
        return -1;
    v->p = PyBytes_AS_STRING(v->owner);
    v->n = PyBytes_GET_SIZE(v->owner);
    return 0;
}

static PyObject *Packer_pack(Packer *pk, PyObject *record)
{
    Val vals[NVALUES];
    for (int j = 0; j < NVALUES; j++) { /* what the clean-up looks at */
        vals[j].owner = NULL;
        vals[j].has_view = false;
    }
    PyObject *out = NULL;
    Py_ssize_t total = PyBytes_GET_SIZE(pk->prefix);
    int i;
    bool slots = Py_IS_TYPE(record, pk->record);
    for (i = 0; i < NVALUES; i++) {
        PyObject *x;
        if (slots) { /* what the member descriptor's get would return */
            x = *(PyObject **)((char *)record + pk->off[i]);
            if (x == NULL)
                PyErr_Format(PyExc_AttributeError, "'%.100s' object has no attribute '%s'",
                             Py_TYPE(record)->tp_name, VALUES[i].name);
            Py_XINCREF(x);
        } else {
            x = PyObject_GetAttr(record, PyTuple_GET_ITEM(pk->attrs, i));
        }
        int rc = x ? value_of(pk, i, x, &vals[i]) : -1;
        Py_XDECREF(x); /* a value's bytes are the record's, which holds them meanwhile */
        if (rc < 0)
            goto done;
        vals[i].hlen = bulk_head(vals[i].head, vals[i].n);
        total += PyBytes_GET_SIZE(PyTuple_GET_ITEM(pk->names, i)) + vals[i].hlen + vals[i].n + 2;
    }
    out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL)
        goto done;
    char *w = PyBytes_AS_STRING(out);
    memcpy(w, PyBytes_AS_STRING(pk->prefix), PyBytes_GET_SIZE(pk->prefix));
    w += PyBytes_GET_SIZE(pk->prefix);
    for (int j = 0; j < NVALUES; j++) {
        PyObject *name = PyTuple_GET_ITEM(pk->names, j);
        memcpy(w, PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name));
        w += PyBytes_GET_SIZE(name);
        memcpy(w, vals[j].head, (size_t)vals[j].hlen);
        w += vals[j].hlen;
        if (vals[j].n)
            memcpy(w, vals[j].p, vals[j].n);
        w += vals[j].n;
        *w++ = '\r';
        *w++ = '\n';
    }
done:
    for (int j = 0; j < NVALUES; j++) {
        Py_XDECREF(vals[j].owner);
        if (vals[j].has_view)
            PyBuffer_Release(&vals[j].view);
    }
    return out;
}

/* The offset of each value's slot when record_cls keeps them all in plain slots; false else. */
static bool slot_layout(Packer *pk, PyObject *record_cls)
{
    if (!PyType_Check(record_cls))
        return false;
    for (int i = 0; i < NVALUES; i++) {
        PyObject *d = PyObject_GetAttrString(record_cls, VALUES[i].name);
        bool ok = d != NULL && Py_IS_TYPE(d, &PyMemberDescr_Type)
                  && ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX;
        if (ok)
            pk->off[i] = ((PyMemberDescrObject *)d)->d_member->offset;
        Py_XDECREF(d);
        if (!ok) {
            PyErr_Clear();
            return false;
        }
    }
    return true;
}

static int Packer_init(Packer *pk, PyObject *args, PyObject *kw)
{
    static char *names[] = {"prefix", "names", "fields", "dumps", "record", NULL};
    PyObject *prefix, *bulk, *fields, *dumps, *record_cls = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "SO!O!O|O:Packer", names, &prefix, &PyTuple_Type,
                                     &bulk, &PyTuple_Type, &fields, &dumps, &record_cls))
        return -1;
    if (PyTuple_GET_SIZE(fields) != NVALUES || PyTuple_GET_SIZE(bulk) != NVALUES) {
        PyErr_Format(PyExc_ValueError, "the record has %d fields here, %zd in xadd.FIELDS",
                     NVALUES, PyTuple_GET_SIZE(fields));
        return -1;
    }
    PyObject *attrs = PyTuple_New(NVALUES);
    if (attrs == NULL)
        return -1;
    for (int i = 0; i < NVALUES; i++) {
        PyObject *f = PyTuple_GET_ITEM(fields, i), *b = PyTuple_GET_ITEM(bulk, i);
        if (!PyUnicode_Check(f) || PyUnicode_CompareWithASCIIString(f, VALUES[i].name) != 0
            || !PyBytes_Check(b)) {
            PyErr_Format(PyExc_ValueError, "xadd.FIELDS[%d] is %R, the native packer writes %s",
                         i, f, VALUES[i].name);
            Py_DECREF(attrs);
            return -1;
        }
        PyObject *name = PyUnicode_InternFromString(VALUES[i].name);
        if (name == NULL) {
            Py_DECREF(attrs);
            return -1;
        }
        PyTuple_SET_ITEM(attrs, i, name);
    }
    Py_XSETREF(pk->attrs, attrs);
    Py_XSETREF(pk->prefix, Py_NewRef(prefix));
    Py_XSETREF(pk->names, Py_NewRef(bulk));
    Py_XSETREF(pk->dumps, Py_NewRef(dumps));
    Py_CLEAR(pk->record);
    if (slot_layout(pk, record_cls))
        pk->record = (PyTypeObject *)Py_NewRef(record_cls);
    return 0;
}

static int Packer_traverse(Packer *pk, visitproc visit, void *arg)
{
    Py_VISIT(pk->dumps);
    Py_VISIT(pk->record);
    return 0;
}

static int Packer_clear(Packer *pk)
{
    Py_CLEAR(pk->prefix);
    Py_CLEAR(pk->names);
    Py_CLEAR(pk->dumps);
    Py_CLEAR(pk->attrs);
    Py_CLEAR(pk->record);
    return 0;
}

static void Packer_dealloc(Packer *pk)
{
    PyObject_GC_UnTrack(pk);
    Packer_clear(pk);
    Py_TYPE(pk)->tp_free((PyObject *)pk);
}

static PyObject *Packer_call_pack(Packer *pk, PyObject *record)
{
    if (pk->prefix == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Packer.__init__ was not called");
        return NULL;
    }
    return Packer_pack(pk, record);
}

static PyMethodDef Packer_methods[] = {
    {"pack", (PyCFunction)Packer_call_pack, METH_O,
     "pack(record) -> the RESP bytes of XADD <head...> <field> <value> ..."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject PackerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sidecar.capture._native.Packer",
    .tp_basicsize = sizeof(Packer),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "XaddPacker (sidecar/contract/xadd.py), natively: the same bytes.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Packer_init,
    .tp_dealloc = (destructor)Packer_dealloc,
    .tp_traverse = (traverseproc)Packer_traverse,
    .tp_clear = (inquiry)Packer_clear,
    .tp_methods = Packer_methods,
};
