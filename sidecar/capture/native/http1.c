/* HTTP/1.0/1.1 reassembly for one server-side TCP connection: two byte streams -> exchanges.
 *
 * The port of sidecar/capture/httpstream.py (read its docstring for what is handled and why);
 * functions carry the names of the Python methods they mirror. The glue around llhttp (the
 * header name/value accumulation, which callbacks are set, the upgrade pause) is httptools'
 * (httptools/parser/parser.pyx), so both paths drive llhttp the same way. */
#include "hot.h"

#include <stdlib.h>
#include <string.h>

static const char ZEROS[65536]; /* placeholder bytes fed for a gap inside a body */

static void message_done(Side *s);
static void hbreak(Http *h, int counter, const char *reason, const char *cls, const char *detail);

/* Messages are recycled (a few per connection per request): a freed one keeps its buffers,
 * up to MSG_KEEP bytes each, for the next. */
#define MSG_POOL 64
#define MSG_KEEP 16384

static void keep_buf(Buf *b)
{
    if (b->cap > MSG_KEEP)
        buf_free(b);
    b->len = 0;
}

static void keep_hdrs(Hdrs *h)
{
    if (h->bytes.cap > MSG_KEEP || h->cap > MSG_KEEP / sizeof(Pair))
        hdrs_free(h);
    h->bytes.len = 0;
    h->n = 0;
}

static Msg *msg_new(Tracker *t, int64_t ts, uint64_t flen)
{
    Msg *m;
    if (t->npool) {
        m = t->pool[--t->npool];
        Msg kept = *m; /* its buffers, emptied by msg_free */
        memset(m, 0, sizeof(Msg));
        m->url = kept.url;
        m->headers = kept.headers;
        m->raw = kept.raw;
        m->body = kept.body;
        m->ex_body = kept.ex_body;
        m->resp_headers = kept.resp_headers;
        m->resp_body = kept.resp_body;
    } else {
        m = xrealloc(NULL, sizeof(Msg));
        memset(m, 0, sizeof(Msg));
    }
    m->start = m->last = ts;
    m->flen = flen;
    return m;
}

void msg_free(Tracker *t, Msg *m)
{
    if (m == NULL)
        return;
    if (t != NULL && t->npool < MSG_POOL) {
        keep_buf(&m->url);
        keep_hdrs(&m->headers);
        keep_hdrs(&m->raw);
        keep_buf(&m->body);
        keep_buf(&m->ex_body);
        keep_hdrs(&m->resp_headers);
        keep_buf(&m->resp_body);
        t->pool[t->npool++] = m;
        return;
    }
    buf_free(&m->url);
    hdrs_free(&m->headers);
    hdrs_free(&m->raw);
    buf_free(&m->body);
    buf_free(&m->ex_body);
    hdrs_free(&m->resp_headers);
    buf_free(&m->resp_body);
    free(m);
}

/* The side lets go of its message (the queue keeps a queued request). */
static void side_drop(Side *s)
{
    if (s->msg != NULL && !s->msg->queued)
        msg_free(s->h->t, s->msg);
    s->msg = NULL;
}

/* -- framing ----------------------------------------------------------------------------- */
static bool py_space(unsigned char c)
{ /* str.isspace() for one latin-1 code point */
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f) || c == 0x85
           || c == 0xa0;
}

/* int(value.strip()) for the digits llhttp accepted; false if Python's int() would refuse. */
static bool parse_length(const char *s, size_t n, uint64_t *out)
{
    while (n && py_space((unsigned char)s[0]))
        s++, n--;
    while (n && py_space((unsigned char)s[n - 1]))
        n--;
    if (n && s[0] == '+')
        s++, n--;
    if (n == 0)
        return false;
    uint64_t v = 0;
    bool digit = false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] >= '0' && s[i] <= '9') {
            v = v * 10 + (uint64_t)(s[i] - '0');
            digit = true;
        } else if (s[i] == '_' && digit && i + 1 < n && s[i + 1] != '_') {
            digit = false;
        } else {
            return false;
        }
    }
    *out = v;
    return digit;
}

static bool name_is(const Hdrs *hs, const Pair *p, const char *name)
{
    size_t n = strlen(name);
    return p->nlen == n && strncasecmp(hs->bytes.p + p->noff, name, n) == 0;
}

/* _framing: (Content-Length or none, has Transfer-Encoding) of a header list. */
static void framing(const Hdrs *hs, bool *has_cl, uint64_t *cl, bool *te)
{
    *has_cl = *te = false;
    *cl = 0;
    for (size_t i = 0; i < hs->n; i++) {
        const Pair *p = &hs->v[i];
        if (name_is(hs, p, "content-length")) {
            *has_cl = parse_length(hs->bytes.p + p->voff, p->vlen, cl);
            if (!*has_cl)
                *cl = 0;
        } else if (name_is(hs, p, "transfer-encoding")) {
            *te = true;
        }
    }
}

/* -- the queue of requests ---------------------------------------------------------------- */
static Msg *q_at(Http *h, size_t i) { return h->queue[h->qhead + i]; }

static void q_append(Http *h, Msg *m)
{
    if (h->qhead + h->qlen == h->qcap) {
        if (h->qhead) {
            memmove(h->queue, h->queue + h->qhead, h->qlen * sizeof(Msg *));
            h->qhead = 0;
        }
        if (h->qlen == h->qcap) {
            h->qcap = h->qcap ? h->qcap * 2 : 4;
            h->queue = xrealloc(h->queue, h->qcap * sizeof(Msg *));
        }
    }
    m->queued = true;
    h->queue[h->qhead + h->qlen++] = m;
}

static Msg *q_popleft(Http *h)
{
    Msg *m = h->queue[h->qhead++];
    if (--h->qlen == 0)
        h->qhead = 0;
    m->queued = false;
    return m;
}

/* -- httptools' glue and the llhttp callbacks ------------------------------------------------ */
static void maybe_call_on_header(Side *s)
{
    if (!s->hval_set)
        return;
    if (s->msg != NULL)  /* on_header: self.msg.raw.append((name, value)) */
        hdrs_add(&s->msg->raw, s->hname.p, s->hname.len, s->hval.p, s->hval.len);
    s->hname.len = s->hval.len = 0;
    s->hname_set = s->hval_set = false;
}

static int cb_message_begin(llhttp_t *p)
{
    Side *s = p->data;
    side_drop(s);
    s->msg = msg_new(s->h->t, s->h->ts, s->flen);
    s->begun++;
    return 0;
}

static int cb_url(llhttp_t *p, const char *at, size_t n)
{
    Side *s = p->data;
    if (s->msg != NULL)
        buf_add(&s->msg->url, at, n);
    return 0;
}

static int cb_header_field(llhttp_t *p, const char *at, size_t n)
{
    Side *s = p->data;
    maybe_call_on_header(s);
    buf_add(&s->hname, at, n);
    s->hname_set = true;
    return 0;
}

static int cb_header_value(llhttp_t *p, const char *at, size_t n)
{
    Side *s = p->data;
    buf_add(&s->hval, at, n);
    s->hval_set = true;
    return 0;
}

static uint64_t head_size(const Msg *m)
{ /* _head_size: bytes of a parsed header block, give or take its spaces */
    uint64_t n = m->url.len;
    for (size_t i = 0; i < m->raw.n; i++)
        n += m->raw.v[i].nlen + m->raw.v[i].vlen + 4;
    return n;
}

/* _headers_done; -1 where the Python raises _Stop. */
static int headers_done(Side *s)
{
    Http *h = s->h;
    Tracker *t = h->t;
    Msg *m = s->msg;
    if (m->flen + m->hdr_feed + s->flen > t->max_hdr && head_size(m) > t->max_hdr) {
        hbreak(h, C_PE_HEADER_TOO_LARGE, "header_too_large", NULL, NULL);
        return -1;
    }
    m->hdr_done = true;
    hdrs_move(&m->headers, &m->raw); /* what arrives from now on is trailers */
    if (s->is_req) {
        m->method = s->p.method;
        m->vmaj = s->p.http_major;
        m->vmin = s->p.http_minor;
        if (m->method == HTTP_HEAD) {
            m->head = true;
            h->heads++;
        } else if (m->method == HTTP_CONNECT) {
            m->connect = true;
        }
        if (s->p.upgrade && !m->connect) { /* llhttp will skip this request's body */
            bool has_cl, te;
            uint64_t cl;
            framing(&m->headers, &has_cl, &cl, &te);
            if (te) {
                hbreak(h, C_PE_INVALID_REQUEST, "invalid_request", NULL, NULL);
                return -1;
            }
            m->raw_left = has_cl ? cl : 0;
        }
        q_append(h, m);
        return 0;
    }
    int status = s->p.status_code;
    if (100 <= status && status < 200 && status != 101) {
        m->interim = true; /* 100/102/103: not an answer */
        return 0;
    }
    if (h->paired >= (long)h->qlen) {
        hbreak(h, C_PE_UNPAIRED_RESPONSE, "unpaired_response", NULL, NULL);
        return -1;
    }
    Msg *req = q_at(h, (size_t)h->paired);
    if (req->head && !h->heading) { /* its answer began before the HEAD request was read */
        hbreak(h, C_PE_UNPAIRED_RESPONSE, "unpaired_response", NULL, NULL);
        return -1;
    }
    h->paired++;
    h->heads -= req->head;
    m->pair = req;
    req->status = status;
    if (status == 101 || (req->connect && status < 300)) {
        message_done(s);
        hbreak(h, C_PE_UPGRADED, "upgraded", NULL, NULL);
        return -1;
    }
    return 0;
}

static int cb_headers_complete(llhttp_t *p)
{
    Side *s = p->data;
    maybe_call_on_header(s);
    if (headers_done(s) < 0)
        return -1;
    return p->upgrade ? 1 : 0;
}

/* _Side.on_body */
static void on_body(Side *s, const char *data, size_t n)
{
    Msg *m = s->msg;
    m->length += n;
    if (m->cut)
        return;
    uint64_t room = s->h->t->max_body - m->stored;
    if (n > room) {
        n = (size_t)room;
        m->cut = true;
        s->h->t->counts[s->is_req ? C_TRUNC_REQUEST : C_TRUNC_RESPONSE]++;
    }
    if (n) {
        buf_add(&m->body, data, n);
        m->stored += n;
    }
}

static int cb_body(llhttp_t *p, const char *at, size_t n)
{
    Side *s = p->data;
    if (s->msg != NULL)
        on_body(s, at, n);
    return 0;
}

static int cb_message_complete(llhttp_t *p)
{
    message_done(p->data);
    return 0;
}

static int cb_chunk_header(llhttp_t *p)
{
    Side *s = p->data;
    if (s->hval_set || s->hname_set) { /* httptools: HttpParserError('invalid headers state') */
        s->state_error = true;
        return -1;
    }
    return 0;
}

static int cb_chunk_complete(llhttp_t *p)
{
    maybe_call_on_header(p->data);
    return 0;
}

static llhttp_settings_t REQ_SETTINGS, RESP_SETTINGS;

static void settings_once(void)
{
    static bool done;
    if (done)
        return;
    llhttp_settings_t *all[2] = {&REQ_SETTINGS, &RESP_SETTINGS};
    for (int i = 0; i < 2; i++) {
        llhttp_settings_t *st = all[i];
        llhttp_settings_init(st);
        st->on_header_field = cb_header_field;
        st->on_header_value = cb_header_value;
        st->on_headers_complete = cb_headers_complete;
        st->on_body = cb_body;
        st->on_message_begin = cb_message_begin;
        st->on_message_complete = cb_message_complete;
        st->on_chunk_header = cb_chunk_header;
        st->on_chunk_complete = cb_chunk_complete;
    }
    REQ_SETTINGS.on_url = cb_url;
    done = true;
}

/* -- _Side -------------------------------------------------------------------------------- */
static void side_reset(Side *s)
{ /* a new httptools parser: llhttp and the glue state start over */
    llhttp_init(&s->p, s->is_req ? HTTP_REQUEST : HTTP_RESPONSE,
                s->is_req ? &REQ_SETTINGS : &RESP_SETTINGS);
    s->p.data = s;
    s->hname.len = s->hval.len = 0;
    s->hname_set = s->hval_set = s->state_error = false;
}

static void side_init(Side *s, Http *h, bool is_req)
{
    memset(s, 0, sizeof(*s));
    s->h = h;
    s->is_req = is_req;
    side_reset(s);
}

static const char *error_class(llhttp_errno_t err)
{ /* httptools' parser_error_from_errno */
    switch (err) {
    case HPE_CB_MESSAGE_BEGIN:
    case HPE_CB_HEADERS_COMPLETE:
    case HPE_CB_MESSAGE_COMPLETE:
    case HPE_CB_CHUNK_HEADER:
    case HPE_CB_CHUNK_COMPLETE:
    case HPE_USER:
        return "HttpParserCallbackError";
    case HPE_INVALID_STATUS:
        return "HttpParserInvalidStatusError";
    case HPE_INVALID_METHOD:
        return "HttpParserInvalidMethodError";
    case HPE_INVALID_URL:
        return "HttpParserInvalidURLError";
    default:
        return "HttpParserError";
    }
}

/* _Side.feed: 1 with *rest set after an upgrade request, else 0. Never fails. */
static int side_feed(Side *s, const char *data, size_t n, size_t *rest)
{
    Http *h = s->h;
    bool had = s->msg != NULL;
    uint64_t begun = s->begun;
    s->flen = n;
    llhttp_errno_t err = llhttp_execute(&s->p, data, n);
    if (s->p.upgrade == 1 && err == HPE_PAUSED_UPGRADE) {
        const char *pos = llhttp_get_error_pos(&s->p);
        llhttp_resume_after_upgrade(&s->p);
        *rest = (size_t)(pos - data);
        return 1;
    }
    if (err != HPE_OK) {
        if (!h->dead) {
            const char *cls = error_class(err), *detail = llhttp_get_error_reason(&s->p);
            if (strcmp(cls, "HttpParserCallbackError") == 0 && s->state_error) {
                cls = "HttpParserError"; /* the callback's own error (its __context__) */
                detail = "invalid headers state";
                s->state_error = false;
            }
            if (err == HPE_INVALID_METHOD)
                hbreak(h, C_PE_INVALID_METHOD, "invalid_method", cls, detail);
            else if (s->is_req)
                hbreak(h, C_PE_INVALID_REQUEST, "invalid_request", cls, detail);
            else
                hbreak(h, C_PE_INVALID_RESPONSE, "invalid_response", cls, detail);
        }
        return 0;
    }
    Msg *m = s->msg;
    if (m != NULL && !m->hdr_done && had && s->begun == begun) { /* bound llhttp's buffering */
        m->hdr_feed += n;
        if (m->hdr_feed > h->t->max_hdr)
            hbreak(h, C_PE_HEADER_TOO_LARGE, "header_too_large", NULL, NULL);
    }
    return 0;
}

/* -- HttpConnectionParser ------------------------------------------------------------------ */
void http_init(Http *h, Tracker *t)
{
    settings_once();
    memset(h, 0, sizeof(*h));
    h->t = t;
    side_init(&h->q, h, true);
    side_init(&h->r, h, false);
}

void http_free(Http *h)
{
    side_drop(&h->q);
    side_drop(&h->r);
    for (size_t i = 0; i < h->qlen; i++)
        msg_free(h->t, q_at(h, i));
    free(h->queue);
    buf_free(&h->q.hname);
    buf_free(&h->q.hval);
    buf_free(&h->r.hname);
    buf_free(&h->r.hval);
    buf_free(&h->head_buf);
    memset(h, 0, sizeof(*h));
}

void http_feed_request(Http *h, const char *data, size_t n, int64_t ts)
{
    if (h->dead || n == 0)
        return;
    h->ts = ts;
    Side *q = &h->q;
    while (n && !h->dead) {
        Msg *m = q->msg;
        if (m != NULL && m->raw_left) { /* the body of an upgrade request, read by us */
            size_t take = n < m->raw_left ? n : (size_t)m->raw_left;
            on_body(q, data, take);
            data += take;
            n -= take;
            m->raw_left -= take;
            if (!m->raw_left)
                message_done(q);
            continue;
        }
        size_t rest;
        if (!side_feed(q, data, n, &rest))
            break;
        data += rest; /* llhttp stopped after an upgrade request: go on with a new one */
        n -= rest;
        side_reset(q);
    }
    if (q->msg != NULL)
        q->msg->last = ts;
}

/* _next_status_line: where after pos a status line may start (or begin, cut by the end). */
static size_t next_status_line(const char *data, size_t n, size_t pos)
{
    if (pos + 1 < n) {
        const char *hit = memmem(data + pos + 1, n - pos - 1, "HTTP/", 5);
        if (hit != NULL)
            return (size_t)(hit - data);
    }
    for (size_t k = 4; k >= 1; k--) {
        if (n >= k && n - k > pos && memcmp(data + n - k, "HTTP/", k) == 0)
            return n - k;
    }
    return n;
}

/* _head_block: collect a HEAD response's header block, parse it alone; the next offset. */
static size_t head_block(Http *h, const char *data, size_t n, size_t pos)
{
    Buf *buf = &h->head_buf;
    size_t old = buf->len;
    buf_add(buf, data + pos, n - pos);
    size_t from = old > 3 ? old - 3 : 0;
    const char *end = buf->len > from ? memmem(buf->p + from, buf->len - from, "\r\n\r\n", 4) : NULL;
    size_t i = end ? (size_t)(end - buf->p) : 0;
    if (end == NULL || i + 4 > h->t->max_hdr) {
        if (buf->len > h->t->max_hdr)
            hbreak(h, C_PE_HEADER_TOO_LARGE, "header_too_large", NULL, NULL);
        return n;
    }
    Buf block = *buf; /* the block is parsed from its own copy: head_buf is done with */
    memset(buf, 0, sizeof(*buf));
    h->head_active = false;
    Side *r = &h->r;
    h->heading = true;
    size_t rest;
    int upgraded = side_feed(r, block.p, i + 4, &rest);
    h->heading = false;
    buf_free(&block);
    if (upgraded) {
        hbreak(h, C_PE_UPGRADED, "upgraded", NULL, NULL);
    } else if (r->msg != NULL && r->msg->hdr_done && !h->dead) {
        message_done(r); /* llhttp now waits for a body that does not exist */
        side_reset(r);
    }
    return pos + i + 4 - old;
}

static void feed_response(Http *h, const char *data, size_t n, int64_t ts)
{ /* _feed_response */
    h->ts = ts;
    Side *r = &h->r;
    size_t pos = 0, rest;
    if (!h->heads && !h->head_active) { /* the usual case: no HEAD in sight */
        if (side_feed(r, data, n, &rest))
            hbreak(h, C_PE_UPGRADED, "upgraded", NULL, NULL);
        pos = n;
    }
    while (pos < n && !h->dead) {
        if (h->head_active) {
            pos = head_block(h, data, n, pos);
        } else if (r->msg == NULL && h->paired < (long)h->qlen && q_at(h, (size_t)h->paired)->head) {
            h->head_active = true;
            h->head_buf.len = 0;
        } else {
            /* With a HEAD request waiting, stop wherever a status line may start, so that
             * its response is never read by a parser that would expect a body. */
            size_t end = h->heads ? next_status_line(data, n, pos) : n;
            if (side_feed(r, data + pos, end - pos, &rest))
                hbreak(h, C_PE_UPGRADED, "upgraded", NULL, NULL);
            pos = end;
        }
    }
    if (r->msg != NULL)
        r->msg->last = ts;
}

void http_feed_response(Http *h, const char *data, size_t n, int64_t ts)
{
    if (!h->dead && n)
        feed_response(h, data, n, ts);
}

void http_lost(Http *h, bool request, uint64_t nbytes, int64_t ts)
{
    if (h->dead || nbytes == 0)
        return;
    h->ts = ts;
    Side *s = request ? &h->q : &h->r;
    Msg *m = s->msg;
    bool in_body = m != NULL && m->hdr_done && !m->interim;
    bool has_cl = false, te = true;
    uint64_t cl = 0;
    if (in_body)
        framing(&m->headers, &has_cl, &cl, &te);
    if (te || (!has_cl && request) || (has_cl && nbytes > cl - m->length)) {
        hbreak(h, C_PE_LOST_BYTES, "lost_bytes", NULL, NULL); /* headers, chunks, past the end */
        return;
    }
    m->cut = true; /* the stored body is the true prefix before the gap */
    if (!has_cl) { /* a body read until the close: llhttp has nothing to count */
        m->length += nbytes;
        m->last = ts;
        return;
    }
    for (uint64_t off = 0; off < nbytes; off += sizeof(ZEROS)) {
        size_t k = nbytes - off < sizeof(ZEROS) ? (size_t)(nbytes - off) : sizeof(ZEROS);
        if (request)
            http_feed_request(h, ZEROS, k, ts);
        else
            feed_response(h, ZEROS, k, ts); /* exchanges wait for the next feed */
    }
}

static void abandon(Http *h, int counter);

void http_close(Http *h, int64_t ts)
{
    h->ts = ts;
    if (!h->dead) {
        Msg *r = h->r.msg;
        if (r != NULL && r->pair != NULL) {
            bool has_cl, te;
            uint64_t cl;
            framing(&r->headers, &has_cl, &cl, &te);
            if (!has_cl && !te) {
                Msg *pair = r->pair;
                int64_t last = r->last;
                message_done(&h->r); /* its body ran until the close */
                pair->resp_end = last;
            }
        }
        abandon(h, C_INC_CLOSED);
    }
    h->dead = true;
}

Msg *http_pop_ready(Http *h)
{ /* _ready, one at a time */
    if (h->qlen && q_at(h, 0)->req_done && q_at(h, 0)->resp_done) {
        h->paired--;
        return q_popleft(h);
    }
    return NULL;
}

Msg *http_pop_any(Http *h)
{
    if (!h->qlen) {
        h->paired = 0;
        return NULL;
    }
    return q_popleft(h);
}

/* -- internals ------------------------------------------------------------------------------ */
static void message_done(Side *s)
{ /* _message_done */
    Http *h = s->h;
    Msg *m = s->msg;
    s->msg = NULL;
    if (m == NULL)
        return;
    if (m->raw.n && m->hdr_done) { /* trailers of a chunked body: kept after the headers */
        hdrs_extend(&m->headers, &m->raw);
        hdrs_free(&m->raw);
    }
    if (s->is_req) {
        if (m->raw_left) { /* keep reading its body ourselves (http_feed_request) */
            s->msg = m;
            return;
        }
        buf_move(&m->ex_body, &m->body);
        m->ex_body_len = m->length;
        m->ex_truncated = m->cut;
        m->req_end = h->ts;
        m->req_done = true;
        if (!m->queued) /* cannot happen: a request completes after its headers */
            msg_free(h->t, m);
    } else {
        if (!m->interim && m->pair != NULL) {
            Msg *ex = m->pair;
            hdrs_move(&ex->resp_headers, &m->headers);
            buf_move(&ex->resp_body, &m->body);
            ex->resp_body_len = m->length;
            ex->resp_truncated = m->cut;
            ex->resp_end = h->ts;
            ex->resp_done = true;
        }
        msg_free(h->t, m);
    }
}

/* _abandon: give up the messages half-received; keep what they had, flagged truncated.
 * counter: the incomplete{reason} to count, or -1. */
static void abandon(Http *h, int counter)
{
    Msg *q = h->q.msg, *r = h->r.msg;
    bool head = h->head_active && h->head_buf.len > 0;
    h->q.msg = h->r.msg = NULL;
    h->head_active = false;
    h->head_buf.len = 0;
    Msg *both[2] = {q, r};
    for (int i = 0; i < 2; i++) {
        Msg *m = both[i];
        if (m == NULL)
            continue;
        if (counter >= 0)
            h->t->counts[counter]++;
        Msg *target = i == 0 ? m : m->pair;
        if (m->hdr_done && target != NULL) {
            bool has_cl, te;
            uint64_t cl;
            framing(&m->headers, &has_cl, &cl, &te);
            uint64_t length = m->length > cl ? m->length : cl;
            if (i == 0) {
                buf_move(&target->ex_body, &m->body);
                target->ex_body_len = length;
                target->ex_truncated = true;
                target->req_end = m->last;
                target->req_done = true;
            } else {
                hdrs_move(&target->resp_headers, &m->headers);
                buf_move(&target->resp_body, &m->body);
                target->resp_body_len = length;
                target->resp_truncated = true;
                target->resp_end = m->last;
                target->resp_done = true;
            }
        }
        if (!m->queued)
            msg_free(h->t, m);
    }
    if (head && counter >= 0)
        h->t->counts[counter]++;
}

static void hbreak(Http *h, int counter, const char *reason, const char *cls, const char *detail)
{ /* _break */
    h->broken = reason;
    h->dead = true;
    h->t->counts[counter]++;
    tr_log_broken(h->t, reason, cls, detail, h->qlen);
    abandon(h, counter == C_PE_LOST_BYTES ? C_INC_LOST_BYTES : -1);
}
