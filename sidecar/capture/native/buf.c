/* Growable byte buffers and ordered header lists for the native hot path. */
#include "hot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        fputs("rewind-capture: out of memory in the native hot path\n", stderr);
        abort();
    }
    return q;
}

void buf_add(Buf *b, const char *s, size_t n)
{
    if (n == 0)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->len + n)
            cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

void buf_free(Buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void buf_move(Buf *dst, Buf *src)
{
    buf_free(dst);
    *dst = *src;
    src->p = NULL;
    src->len = src->cap = 0;
}

void hdrs_add(Hdrs *h, const char *name, size_t nlen, const char *value, size_t vlen)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 8;
        h->v = xrealloc(h->v, h->cap * sizeof(Pair));
    }
    Pair *p = &h->v[h->n++];
    p->noff = h->bytes.len;
    p->nlen = nlen;
    buf_add(&h->bytes, name, nlen);
    p->voff = h->bytes.len;
    p->vlen = vlen;
    buf_add(&h->bytes, value, vlen);
}

void hdrs_extend(Hdrs *dst, const Hdrs *src)
{
    for (size_t i = 0; i < src->n; i++) {
        const Pair *p = &src->v[i];
        hdrs_add(dst, src->bytes.p + p->noff, p->nlen, src->bytes.p + p->voff, p->vlen);
    }
}

void hdrs_free(Hdrs *h)
{
    buf_free(&h->bytes);
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}

void hdrs_move(Hdrs *dst, Hdrs *src)
{
    hdrs_free(dst);
    *dst = *src;
    memset(src, 0, sizeof(*src));
}
