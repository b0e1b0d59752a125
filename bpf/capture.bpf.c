/* rewind capture probe (bcc). Syscall tracepoints only: this kernel family has no kprobes.
 *
 * It copies the bytes that the watched server processes read from and write to their accepted
 * TCP connections, and nothing else: what a connection is and which ones to watch is decided in
 * userspace (sidecar/capture/targets.py seeds `listeners` and already-open `conns`); HTTP is parsed in
 * userspace too. Every event that cannot be delivered is counted in `drops`, with one exception:
 * bytes a call moved beyond the iovec entries looked at (see emit_run) are not emitted and not
 * counted here; userspace sees them as a gap and counts them as lost bytes.
 *
 * With --tls, userspace also attaches the uprobes at the end of this file to the libssl of the
 * target processes: they copy the plaintext of SSL_read/SSL_write, and the raw (encrypted) bytes
 * of those connections are no longer emitted.
 *
 * Configured with -D flags (see bpf/capture.h for the defaults). */
#include <uapi/linux/ptrace.h>
#include <linux/socket.h>
#include <linux/uio.h>

#include "capture.h"

#define MSG_PEEK_FLAG 2

struct conn_info {
    __u64 start_ns;  /* accept time (ktime), or when userspace seeded it */
    __u64 off[2];    /* bytes seen so far per direction: the stream offset of the next chunk */
    __u64 tls_off[2]; /* the same for the plaintext stream of a TLS connection */
    __u64 ssl;       /* the SSL * of this connection (0: none seen): its ssl_fds entry goes at close */
    __u32 tls;       /* 1: libssl speaks on this fd; its syscall bytes are ciphertext, not emitted */
    __u32 hello;     /* 1: the first byte the server read was 0x16 (a TLS handshake record) */
    __u32 gen;       /* the process's generation (`gens`) when the connection began */
    __u32 _pad;
};

struct accept_args {
    __u64 addr;      /* struct sockaddr * given to accept(), may be 0 */
    __s32 listen_fd;
    __u32 _pad;
};

struct io_args {
    __u64 buf;       /* plain buffer, or the struct iovec array */
    __u64 iovcnt;    /* 0 for a plain buffer */
    __s32 fd;
    __s32 nr;        /* syscall number: the exit must be of the same syscall */
    __u16 dir;
    __u16 _pad[3];
};

/* Where the chunk emitter stands; survives the tail calls of one syscall exit. */
struct emit_state {
    __u64 buf;        /* user pointer to the next byte to copy */
    __u64 buf_left;   /* bytes left in the current buffer (iovec entry) */
    __u64 iov;        /* user pointer to the next struct iovec */
    __u64 iov_left;   /* iovec entries not yet opened */
    __u64 remaining;  /* bytes of the syscall still to emit */
    __u64 fill;       /* bytes already copied into the pending chunk (scratch.data) */
};

/* Small iovec entries (a header block, then a short body) are gathered into one chunk rather
 * than sent one event each: a piece of at most GATHER bytes is appended to the pending chunk
 * while that holds fewer than GATHER bytes, so the copy provably stays inside data[]. */
#define GATHER (CHUNK_SIZE / 2)

/* The processes captured (those owning a listening socket of `listeners`), as a filter every
 * program applies first: an array lookup, which the verifier inlines (no hashing, no lock), so a
 * syscall of any other process costs one load before the program returns.
 * index: tgid & (TARGET_SLOTS - 1); value: that tgid, 0 for none, TARGET_ANY when two captured
 * processes share the slot (the programs then go on to the exact maps). Written by userspace
 * with `listeners`. */
#define TARGET_ANY 0xffffffffu
BPF_ARRAY(targets, u32, TARGET_SLOTS);

/* Listening sockets whose accepted connections are captured.
 * key: tgid << 32 | fd; value: unused. Written by userspace (seeded at start, refreshed
 * every second as processes come and go); entries removed by userspace or on close(). */
BPF_HASH(listeners, u64, u8, 4096);

/* Connections being captured. key: tgid << 32 | fd; value: struct conn_info.
 * Added at accept() exit (or seeded by userspace for connections open before start);
 * removed at close() entry, or by userspace when the process is gone. */
BPF_HASH(conns, u64, struct conn_info, MAX_CONNS);

/* Generation of a captured process's fd table. key: tgid; value: bumped by execve (which
 * closes the close-on-exec fds) and close_range() (which closes many at once), neither of
 * which passes through close(). A connection began in an older generation is over: its fd may
 * name another file now, so it is ended (EV_CLOSE) at its next syscall instead of lending its
 * state to whatever reuses the fd. No entry: generation 0. Removed by userspace with the
 * process (forget_processes). */
BPF_HASH(gens, u32, u32, 4096);

/* accept() arguments between syscall entry and exit. key: pid_tgid (thread);
 * removed at exit. */
BPF_TABLE("lru_hash", u64, struct accept_args, accepting, THREAD_SLOTS);

/* read/write-family arguments between entry and exit, only for captured fds: the thread's own
 * storage (BPF task storage: no hashing, no lock, nothing to delete; freed with the thread),
 * armed at entry, disarmed at exit. */
struct io_slot {
    struct io_args a;
    __u32 armed;     /* 1 between the entry and the exit of a captured call */
    __u32 _pad;
};
#if TASK_STORAGE
BPF_TASK_STORAGE(io_task, struct io_slot);
#else  /* no kernel BTF: an LRU hash by pid_tgid, entries disarmed rather than deleted */
BPF_TABLE("lru_hash", u64, struct io_slot, io_task, THREAD_SLOTS);
#endif

/* The same, for threads that were already blocked in a read of a seeded connection when
 * capture started: written by userspace (it cannot reach a thread's task storage), looked at by
 * an exit only while `stashed` says there may be entries. key: pid_tgid; removed at exit. */
BPF_TABLE("lru_hash", u64, struct io_args, io_active, THREAD_SLOTS);

/* [0]: nonzero while io_active may hold entries (set by userspace when it adds one, cleared
 * when it sees the map empty). */
BPF_ARRAY(stashed, u32, 1);

/* Scratch space to build one event (too large for the 512-byte BPF stack). One per CPU. */
BPF_PERCPU_ARRAY(scratch, struct event, 1);

/* Emitter position for the syscall being emitted on this CPU. */
BPF_PERCPU_ARRAY(emit_pos, struct emit_state, 1);

/* The same two for the uprobe path (SSL_read/SSL_write returns): a uprobe program can be
 * preempted on a preemptible kernel, and a tracepoint program run on the same CPU meanwhile
 * must not overwrite the event it is building. */
BPF_PERCPU_ARRAY(tls_scratch, struct event, 1);
BPF_PERCPU_ARRAY(tls_emit_pos, struct emit_state, 1);

/* Events dropped in the kernel, indexed by enum drop_reason. Never reset. */
BPF_PERCPU_ARRAY(drops, u64, DROP_NR);

/* The emitter, to continue a large syscall in a new program run (tail call). */
BPF_PROG_ARRAY(emit_progs, 1);

/* The same emitter loaded as a uprobe program (a tail call stays within one program type),
 * for the plaintext of SSL calls. */
BPF_PROG_ARRAY(tls_emit_progs, 1);

/* SSL_read/SSL_write (and _ex) arguments between entry and return, in the thread's BPF task
 * storage (armed at entry, disarmed at return; freed with the thread). While a thread's slot is
 * armed it is inside libssl: a read/write syscall it makes on a tracked connection names the
 * SSL's fd. */
struct ssl_call {
    __u64 ssl;       /* SSL * */
    __u64 buf;       /* plaintext buffer */
    __u64 nbytes;    /* _ex variants: size_t * that receives the byte count; 0 otherwise */
    __u16 dir;       /* DIR_INGRESS for SSL_read*, DIR_EGRESS for SSL_write* */
    __u16 _pad[3];
};
struct ssl_slot {
    struct ssl_call c;
    __u32 armed;
    __u32 _pad;
};
#if TASK_STORAGE
BPF_TASK_STORAGE(ssl_task, struct ssl_slot);
#else
BPF_TABLE("lru_hash", u64, struct ssl_slot, ssl_task, THREAD_SLOTS);
#endif

/* The current thread's slot in io_task / ssl_task (id: current_id()); with `create`, made if
 * missing. NULL: none (or it could not be made). */
static __always_inline struct io_slot *io_slot(u64 id, int create)
{
#if TASK_STORAGE
    struct task_struct *t = (struct task_struct *)bpf_get_current_task_btf();
    if (create)
        return io_task.task_storage_get(t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
    return io_task.task_storage_get(t, 0, 0);
#else
    struct io_slot *s = io_task.lookup(&id);
    if (s || !create)
        return s;
    struct io_slot zero = {};
    io_task.update(&id, &zero);
    return io_task.lookup(&id);
#endif
}

static __always_inline struct ssl_slot *ssl_slot(u64 id, int create)
{
#if TASK_STORAGE
    struct task_struct *t = (struct task_struct *)bpf_get_current_task_btf();
    if (create)
        return ssl_task.task_storage_get(t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
    return ssl_task.task_storage_get(t, 0, 0);
#else
    struct ssl_slot *s = ssl_task.lookup(&id);
    if (s || !create)
        return s;
    struct ssl_slot zero = {};
    ssl_task.update(&id, &zero);
    return ssl_task.lookup(&id);
#endif
}

/* Which connection an SSL object talks over. key: (tgid, SSL *); value: fd. Added by SSL_set_fd
 * on a tracked connection, or by a syscall on a tracked connection made inside an SSL call
 * (connections older than the capture); removed at the connection's close (conn_info.ssl), or by
 * userspace when the process is gone. */
struct ssl_key {
    __u64 ssl;
    __u32 tgid;
    __u32 _pad;
};
BPF_HASH(ssl_fds, struct ssl_key, s32, MAX_CONNS);

/* The tracked connection each thread last read from. key: pid_tgid; value: fd. Written at the
 * exit of every emitted read; overwritten, and removed by userspace when the process is gone.
 * For servers that feed libssl through memory BIOs (Node.js, Python asyncio): they read the
 * socket themselves, then call SSL_read on the same thread, so an SSL object with no known fd
 * belongs to the connection its thread just read, if that one began with a TLS handshake. */
BPF_TABLE("lru_hash", u64, s32, last_read, THREAD_SLOTS);

BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);

/* Bytes this CPU has submitted to `events` since it last woke the reader (see WAKEUP_BYTES). */
BPF_PERCPU_ARRAY(unwoken, u64, 1);

/* The flags of a submission of `size` bytes: no wake-up, unless this CPU's unwoken bytes
 * reach WAKEUP_BYTES. */
static __always_inline u64 ring_flags(u64 size)
{
#if WAKEUP_BYTES
    u32 zero = 0;
    u64 *n = unwoken.lookup(&zero);
    if (!n)
        return 0;
    *n += size;
    if (*n < WAKEUP_BYTES)
        return BPF_RB_NO_WAKEUP;
    *n = 0;
    return BPF_RB_FORCE_WAKEUP;
#else
    return 0;
#endif
}

/* Submits `size` bytes of `ev` to the ring buffer; a failure is counted. */
static __always_inline void submit(struct event *ev, u64 size);

static __always_inline void count_drop(u32 reason)
{
    u64 *v = drops.lookup(&reason);
    if (v)
        __sync_fetch_and_add(v, 1);  /* a preempted uprobe program may be counting too */
}

static __always_inline void submit(struct event *ev, u64 size)
{
    if (events.ringbuf_output(ev, size, ring_flags(size)))
        count_drop(DROP_RINGBUF_FULL);
}

/* The current thread as tgid << 32 | tid, in the sidecar's PID namespace (PIDNS_INO, see
 * capture.h); 0 for a thread outside that namespace, which is never traced. */
static __always_inline u64 current_id(void)
{
#if PIDNS_INO
    struct bpf_pidns_info ns;
    if (bpf_get_ns_current_pid_tgid(PIDNS_DEV, PIDNS_INO, &ns, sizeof(ns)))
        return 0;
    return ((u64)ns.tgid << 32) | ns.pid;
#else
    return bpf_get_current_pid_tgid();
#endif
}

/* The current thread (as current_id) if its process is captured, else 0: the first check of
 * every program. */
static __always_inline u64 target_id(void)
{
    u64 id = current_id();
    u32 tgid = id >> 32;
    u32 slot = tgid & (TARGET_SLOTS - 1);
    u32 *t = targets.lookup(&slot);
    if (!t || !tgid || (*t != tgid && *t != TARGET_ANY))
        return 0;
    return id;
}

static __always_inline u64 conn_key(u32 tgid, s32 fd)
{
    return ((u64)tgid << 32) | (u32)fd;
}

/* The process's fd-table generation (see `gens`). */
static __always_inline u32 generation(u32 tgid)
{
    u32 *g = gens.lookup(&tgid);
    return g ? *g : 0;
}

/* The fixed part of an event, with no payload and no peer address. */
static __always_inline void event_header(struct event *ev, u16 kind, u32 tgid, s32 fd, u64 ts,
                                         u64 pos, u64 total, u16 dir)
{
    ev->ts_ns = ts;
    ev->pos = pos;
    ev->total = total;
    ev->aux = 0;
    ev->aux2 = 0;
    ev->tgid = tgid;
    ev->fd = fd;
    ev->len = 0;
    ev->kind = kind;
    ev->dir = dir;
    ev->family = 0;
    ev->port = 0;
}

/* ---- accept -------------------------------------------------------------------------- */

static __always_inline int on_accept_enter(s32 fd, u64 addr)
{
    u64 id = target_id();
    if (!id)
        return 0;
    u32 tgid = id >> 32;
    if (tgid == SELF_TGID)
        return 0;
    u64 key = conn_key(tgid, fd);
    if (!listeners.lookup(&key))
        return 0;
    struct accept_args a = {.addr = addr, .listen_fd = fd};
    if (accepting.update(&id, &a))
        count_drop(DROP_ARGS_MAP_FULL);
    return 0;
}

/* accept() on a watched listening socket returned `ret`: track the new connection. */
static __always_inline int on_accept_done(u64 id, struct accept_args args, long ret)
{
    if (ret < 0)
        return 0;
    u32 tgid = id >> 32;
    u64 key = conn_key(tgid, (s32)ret);
    struct conn_info ci = {.start_ns = bpf_ktime_get_ns(), .gen = generation(tgid)};
    if (conns.update(&key, &ci)) {
        count_drop(DROP_CONN_MAP_FULL);
        return 0;
    }

    u32 zero = 0;
    struct event *ev = scratch.lookup(&zero);
    if (!ev)
        return 0;
    event_header(ev, EV_ACCEPT, tgid, (s32)ret, ci.start_ns, 0, 0, 0);
    ev->aux = (u64)args.listen_fd;
    __builtin_memset(ev->addr, 0, sizeof(ev->addr));
    if (args.addr) {
        /* sockaddr_in / sockaddr_in6 from user memory: family at 0, port at 2,
         * IPv4 address at 4, IPv6 address at 8. */
        u8 sa[24] = {};
        if (bpf_probe_read_user(sa, sizeof(sa), (void *)args.addr) == 0) {
            u16 family = sa[0] | (sa[1] << 8);
            ev->family = family;
            ev->port = (sa[2] << 8) | sa[3];
            if (family == 2 /* AF_INET */)
                __builtin_memcpy(ev->addr, &sa[4], 4);
            else if (family == 10 /* AF_INET6 */)
                __builtin_memcpy(ev->addr, &sa[8], 16);
        }
    }
    submit(ev, EVENT_HEADER_SIZE);
    return 0;
}

#if !RAW_EXIT
static __always_inline int on_accept_exit(long ret)
{
    u64 id = target_id();
    if (!id)
        return 0;
    struct accept_args *a = accepting.lookup(&id);
    if (!a)
        return 0;
    struct accept_args args = *a;
    accepting.delete(&id);
    return on_accept_done(id, args, ret);
}

TRACEPOINT_PROBE(syscalls, sys_enter_accept) { return on_accept_enter(args->fd, (u64)args->upeer_sockaddr); }
TRACEPOINT_PROBE(syscalls, sys_exit_accept) { return on_accept_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_accept4) { return on_accept_enter(args->fd, (u64)args->upeer_sockaddr); }
TRACEPOINT_PROBE(syscalls, sys_exit_accept4) { return on_accept_exit(args->ret); }
#endif

/* ---- close --------------------------------------------------------------------------- */

/* Ends connection `c` (key `key`): its entry goes, and userspace gets EV_CLOSE with the final
 * request- and response-stream offsets (the plaintext ones if TLS) in pos and total. */
static __always_inline void end_conn(u32 tgid, s32 fd, u64 key, struct conn_info *c)
{
    u64 tls = c->tls;
    u64 off0 = tls ? c->tls_off[0] : c->off[0], off1 = tls ? c->tls_off[1] : c->off[1];
    if (c->ssl) {
        struct ssl_key sk = {.ssl = c->ssl, .tgid = tgid};
        ssl_fds.delete(&sk);
    }
    conns.delete(&key);

    u32 zero = 0;
    struct event *ev = scratch.lookup(&zero);
    if (!ev)
        return;
    event_header(ev, EV_CLOSE, tgid, fd, bpf_ktime_get_ns(), off0, off1, 0);
    ev->aux = tls;
    submit(ev, EVENT_HEADER_SIZE);
}

/* The tracked connection of fd `fd`, or NULL; a connection of an older generation of the
 * process (see `gens`) is ended first, and NULL returned. */
static __always_inline struct conn_info *live_conn(u32 tgid, s32 fd)
{
    u64 key = conn_key(tgid, fd);
    struct conn_info *c = conns.lookup(&key);
    if (!c)
        return 0;
    if (c->gen != generation(tgid)) {
        end_conn(tgid, fd, key, c);
        return 0;
    }
    return c;
}

TRACEPOINT_PROBE(syscalls, sys_enter_close)
{
    u64 id = target_id();
    if (!id)
        return 0;
    u32 tgid = id >> 32;
    u64 key = conn_key(tgid, (s32)args->fd);
    struct conn_info *c = conns.lookup(&key);
    if (!c) {  /* a file, a pipe, a connection not captured: one more lookup, no delete */
        if (listeners.lookup(&key))
            listeners.delete(&key);
        return 0;
    }
    end_conn(tgid, (s32)args->fd, key, c);
    return 0;
}

/* dup2/dup3 onto a captured connection's fd close that connection (without a close() call). */
static __always_inline int on_dup_enter(s32 oldfd, s32 newfd)
{
    u64 id = target_id();
    if (!id || oldfd == newfd)
        return 0;
    u32 tgid = id >> 32;
    u64 key = conn_key(tgid, newfd);
    struct conn_info *c = conns.lookup(&key);
    if (c)
        end_conn(tgid, newfd, key, c);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_dup2) { return on_dup_enter(args->oldfd, args->newfd); }
TRACEPOINT_PROBE(syscalls, sys_enter_dup3) { return on_dup_enter(args->oldfd, args->newfd); }

/* close_range() and execve() close fds without close(): the process's generation moves on, so
 * each of its connections ends at its next syscall (live_conn) rather than passing its state on
 * to a file that reuses the fd. (close_range with CLOSE_RANGE_CLOEXEC closes nothing by
 * itself, but the exec that follows does.) */
static __always_inline void next_generation(void)
{
    u64 id = target_id();
    if (!id)
        return;
    u32 tgid = id >> 32;
    u32 *g = gens.lookup(&tgid);
    if (g) {
        __sync_fetch_and_add(g, 1);
        return;
    }
    u32 one = 1;
    if (gens.update(&tgid, &one))
        count_drop(DROP_THREAD_MAP);
}

TRACEPOINT_PROBE(syscalls, sys_enter_close_range) { next_generation(); return 0; }
TRACEPOINT_PROBE(sched, sched_process_exec) { next_generation(); return 0; }

/* ---- data ---------------------------------------------------------------------------- */

/* A syscall on a tracked connection: false when its bytes are not to be emitted because they
 * are TLS ciphertext (the connection is known to be TLS, or this thread is inside an SSL call,
 * which then tells which fd that SSL object uses). */
static __always_inline bool plain_io(u64 id, struct conn_info *c, s32 fd)
{
#if !TLS
    return true;  /* no uprobes: no SSL call to be inside of */
#endif
    if (c->tls)
        return false;
    struct ssl_slot *s = ssl_slot(id, 0);
    if (!s || !s->armed)
        return true;
    struct ssl_key sk = {.ssl = s->c.ssl, .tgid = id >> 32};
    ssl_fds.update(&sk, &fd);
    c->ssl = s->c.ssl;
    c->tls = 1;
    return false;
}

/* Keeps a captured call's arguments in the thread's storage until its exit. */
static __always_inline void arm_io(u64 id, struct io_args *a)
{
    struct io_slot *slot = io_slot(id, 1);
    if (!slot) {
        count_drop(DROP_ARGS_MAP_FULL);
        return;
    }
    slot->a = *a;
    slot->armed = 1;
}

/* At a syscall's exit: the arguments its entry kept (or userspace stashed), disarmed; false
 * when the call was not a captured one. */
static __always_inline bool take_io(u64 id, struct io_args *out)
{
    struct io_slot *slot = io_slot(id, 0);
    if (slot && slot->armed) {
        slot->armed = 0;
        *out = slot->a;
        return true;
    }
    u32 zero = 0;
    u32 *any = stashed.lookup(&zero);
    if (!any || !*any)
        return false;
    struct io_args *a = io_active.lookup(&id);
    if (!a)
        return false;
    *out = *a;
    io_active.delete(&id);
    return true;
}

static __always_inline int on_io_enter(s32 nr, s32 fd, u64 buf, u64 iovcnt, u16 dir)
{
    u64 id = target_id();
    if (!id)
        return 0;
    struct conn_info *c = live_conn(id >> 32, fd);
    if (!c || !plain_io(id, c, fd))
        return 0;
    struct io_args a = {.buf = buf, .iovcnt = iovcnt, .fd = fd, .nr = nr, .dir = dir};
    arm_io(id, &a);
    return 0;
}

/* recvmsg/sendmsg: the iovec array sits in a struct user_msghdr in user memory
 * (msg_iov at offset 16, msg_iovlen at offset 24 on 64-bit). */
static __always_inline int on_msg_enter(s32 nr, s32 fd, u64 msg, u16 dir)
{
    u64 id = target_id();
    if (!id)
        return 0;
    struct conn_info *c = live_conn(id >> 32, fd);
    if (!c || !plain_io(id, c, fd))
        return 0;
    u64 iov[2] = {};
    if (bpf_probe_read_user(iov, sizeof(iov), (void *)(msg + 16))) {
        count_drop(DROP_READ_FAULT);
        return 0;
    }
    struct io_args a = {.buf = iov[0], .iovcnt = iov[1], .fd = fd, .nr = nr, .dir = dir};
    arm_io(id, &a);
    return 0;
}

/* Sends the pending chunk (st->fill bytes in ev->data) and moves ev->pos past it. */
static __always_inline void emit_flush(struct event *ev, struct emit_state *st)
{
    u32 fill = st->fill;
    st->fill = 0;
    if (fill == 0)
        return;
    asm volatile("" : "+r"(fill));  /* keeps clang from merging the two checks into one the
                                       verifier cannot follow */
    if (fill > CHUNK_SIZE)
        return;
    ev->len = fill;
    submit(ev, EVENT_HEADER_SIZE + fill);
    ev->pos += fill;
}

/* Emits up to CHUNKS_PER_RUN pieces from where emit_pos stands, then tail-calls itself while
 * bytes remain. The event header in `scratch` was filled by on_io_exit. */
static __always_inline int emit_run(void *ctx, int tls)
{
    u32 zero = 0;
    struct emit_state *st = tls ? tls_emit_pos.lookup(&zero) : emit_pos.lookup(&zero);
    struct event *ev = tls ? tls_scratch.lookup(&zero) : scratch.lookup(&zero);
    if (!st || !ev)
        return 0;

    for (int i = 0; i < CHUNKS_PER_RUN; i++) {
        if (st->remaining == 0)
            break;
        if (st->buf_left == 0) {
            /* The iovec entries looked at hold fewer bytes than the call moved. It happens:
             * a readv/writev/recvmsg/sendmsg with more than MAX_IOV entries (only the first
             * MAX_IOV are opened), or an iovec array another thread changed during the call.
             * The rest of the call's bytes are not emitted: counted as DROP_IOV_LIMIT here,
             * and userspace sees the gap at the connection's next chunk or at its close (the
             * offsets moved by the whole call) and counts it in lost_bytes_total. */
            if (st->iov_left == 0) {
                count_drop(DROP_IOV_LIMIT);
                emit_flush(ev, st);
                return 0;
            }
            struct iovec v = {};
            if (bpf_probe_read_user(&v, sizeof(v), (void *)st->iov)) {
                count_drop(DROP_READ_FAULT);
                emit_flush(ev, st);
                return 0;
            }
            st->iov += sizeof(v);
            st->iov_left -= 1;
            st->buf = (u64)v.iov_base;
            st->buf_left = v.iov_len;
            continue;
        }
        u64 n = st->buf_left < st->remaining ? st->buf_left : st->remaining;
        u32 len, off = 0;
        if (n <= GATHER && st->fill < GATHER) {
            /* append to the pending chunk */
            off = st->fill & (GATHER - 1);
            len = (u32)n;
            if (len > GATHER)  /* for the verifier */
                return 0;
        } else {
            emit_flush(ev, st);
            len = n > CHUNK_SIZE ? CHUNK_SIZE : (u32)n;
            if (len > CHUNK_SIZE)  /* for the verifier */
                return 0;
        }
        if (bpf_probe_read_user(ev->data + off, len, (void *)st->buf) == 0) {
            st->fill = off + len;
        } else {
            count_drop(DROP_READ_FAULT);
            emit_flush(ev, st);  /* what came before the fault; the piece becomes a gap */
            ev->pos += len;
        }
        if (st->fill >= GATHER)
            emit_flush(ev, st);
        st->buf += len;
        st->buf_left -= len;
        st->remaining -= len;
    }
    if (st->remaining) {
        if (tls)
            tls_emit_progs.call(ctx, 0);
        else
            emit_progs.call(ctx, 0);
        emit_flush(ev, st);
        count_drop(DROP_TOO_LARGE);  /* tail-call budget spent: the rest is lost */
        return 0;
    }
    emit_flush(ev, st);
    return 0;
}

int emit_more(void *ctx)
{
    return emit_run(ctx, 0);
}

int emit_more_tls(struct pt_regs *ctx)
{
    return emit_run(ctx, 1);
}

/* A captured call on connection `c` moved `ret` > 0 bytes: emit them (args: its fd, buffer or
 * iovec array, direction). */
static __always_inline int emit_io(void *ctx, u64 id, struct conn_info *c, struct io_args args,
                                   long ret)
{
    u32 tgid = id >> 32;
    u16 dir = args.dir & 1;
    u64 start = __sync_fetch_and_add(&c->off[dir], (u64)ret);
#if TLS
    if (dir == DIR_INGRESS) {  /* for the memory-BIO fallback of ssl_return */
        if (last_read.update(&id, &args.fd))
            count_drop(DROP_THREAD_MAP);
        if (start == 0) {  /* the connection's first byte: a TLS handshake? */
            u64 first = args.buf;
            if (args.iovcnt)
                bpf_probe_read_user(&first, sizeof(first), (void *)args.buf);  /* iov[0].iov_base */
            u8 b = 0;
            bpf_probe_read_user(&b, 1, (void *)first);
            c->hello = b == 0x16;
        }
    }
#endif

    u32 zero = 0;
    struct event *ev = scratch.lookup(&zero);
    struct emit_state *st = emit_pos.lookup(&zero);
    if (!ev || !st)
        return 0;
    event_header(ev, EV_DATA, tgid, args.fd, bpf_ktime_get_ns(), start, (u64)ret, dir);

    st->remaining = (u64)ret;
    st->fill = 0;
    if (args.iovcnt) {
        st->buf = 0;
        st->buf_left = 0;
        st->iov = args.buf;
        st->iov_left = args.iovcnt < MAX_IOV ? args.iovcnt : MAX_IOV;
    } else {
        st->buf = args.buf;
        st->buf_left = (u64)ret;
        st->iov = 0;
        st->iov_left = 0;
    }
    return emit_run(ctx, 0);
}

#if !RAW_EXIT
static __always_inline int on_io_exit(void *ctx, s32 nr, long ret)
{
    u64 id = target_id();
    if (!id)
        return 0;
    struct io_args args;
    if (!take_io(id, &args))
        return 0;
    if (ret <= 0 || args.nr != nr)
        return 0;
    u64 key = conn_key(id >> 32, args.fd);
    struct conn_info *c = conns.lookup(&key);
    if (!c)
        return 0;  /* closed by another thread meanwhile */
    return emit_io(ctx, id, c, args, ret);
}

TRACEPOINT_PROBE(syscalls, sys_enter_read) { return on_io_enter(args->__syscall_nr, args->fd, (u64)args->buf, 0, DIR_INGRESS); }
TRACEPOINT_PROBE(syscalls, sys_exit_read) { return on_io_exit(args, args->__syscall_nr, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_readv) { return on_io_enter(args->__syscall_nr, args->fd, (u64)args->vec, args->vlen, DIR_INGRESS); }
TRACEPOINT_PROBE(syscalls, sys_exit_readv) { return on_io_exit(args, args->__syscall_nr, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_recvfrom)
{
    if (args->flags & MSG_PEEK_FLAG)
        return 0;  /* peeked bytes are read again later */
    return on_io_enter(args->__syscall_nr, args->fd, (u64)args->ubuf, 0, DIR_INGRESS);
}
TRACEPOINT_PROBE(syscalls, sys_exit_recvfrom) { return on_io_exit(args, args->__syscall_nr, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_recvmsg)
{
    if (args->flags & MSG_PEEK_FLAG)
        return 0;
    return on_msg_enter(args->__syscall_nr, args->fd, (u64)args->msg, DIR_INGRESS);
}
TRACEPOINT_PROBE(syscalls, sys_exit_recvmsg) { return on_io_exit(args, args->__syscall_nr, args->ret); }

TRACEPOINT_PROBE(syscalls, sys_enter_write) { return on_io_enter(args->__syscall_nr, args->fd, (u64)args->buf, 0, DIR_EGRESS); }
TRACEPOINT_PROBE(syscalls, sys_exit_write) { return on_io_exit(args, args->__syscall_nr, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_writev) { return on_io_enter(args->__syscall_nr, args->fd, (u64)args->vec, args->vlen, DIR_EGRESS); }
TRACEPOINT_PROBE(syscalls, sys_exit_writev) { return on_io_exit(args, args->__syscall_nr, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_sendto) { return on_io_enter(args->__syscall_nr, args->fd, (u64)args->buff, 0, DIR_EGRESS); }
TRACEPOINT_PROBE(syscalls, sys_exit_sendto) { return on_io_exit(args, args->__syscall_nr, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_sendmsg) { return on_msg_enter(args->__syscall_nr, args->fd, (u64)args->msg, DIR_EGRESS); }
TRACEPOINT_PROBE(syscalls, sys_exit_sendmsg) { return on_io_exit(args, args->__syscall_nr, args->ret); }
#endif  /* !RAW_EXIT */

/* ---- sendfile: bytes go from a file straight to the socket, never through user memory.
 * Emit the count and the file; userspace reads the bytes from /proc/PID/fd/IN_FD. */

struct sendfile_args {
    __u64 offset_ptr;
    __s32 out_fd;
    __s32 in_fd;
    __s64 offset;   /* value of *offset at entry, -1 when NULL (file position used) */
};

/* sendfile() arguments between entry and exit. key: pid_tgid; removed at exit. */
BPF_TABLE("lru_hash", u64, struct sendfile_args, sending, THREAD_SLOTS);

/* Bytes sent by sendfile() calls with no offset (from the file position, which each moves),
 * per file. key: tgid << 32 | in_fd; value: the running total. An EV_SENDFILE of such a call
 * carries the total after it (aux2 = -1 - total), so userspace can tell where the call began
 * from the position it finds later: pos - (total now - total after the call) - call's bytes.
 * LRU: entries of closed files are evicted. */
BPF_TABLE("lru_hash", u64, u64, sf_moved, 4096);

/* sendfile() moved `ret` bytes from s.in_fd to connection s.out_fd. */
static __always_inline int on_sendfile_done(u64 id, struct sendfile_args s, long ret)
{
    if (ret <= 0)
        return 0;
    u32 tgid = id >> 32;
    u64 key = conn_key(tgid, s.out_fd);
    struct conn_info *c = conns.lookup(&key);
    if (!c || c->tls)  /* kTLS's SSL_sendfile is not captured (docs/capture.md, Limits) */
        return 0;
    u64 start = __sync_fetch_and_add(&c->off[DIR_EGRESS], (u64)ret);
    u32 zero = 0;
    struct event *ev = scratch.lookup(&zero);
    if (!ev)
        return 0;
    event_header(ev, EV_SENDFILE, tgid, s.out_fd, bpf_ktime_get_ns(), start, (u64)ret,
                 DIR_EGRESS);
    ev->aux = (u64)s.in_fd;
    ev->aux2 = s.offset;
    if (s.offset < 0) {
        u64 fkey = conn_key(tgid, s.in_fd), zero64 = 0;
        u64 *moved = sf_moved.lookup(&fkey);
        if (!moved) {
            sf_moved.update(&fkey, &zero64);
            moved = sf_moved.lookup(&fkey);
        }
        if (moved)
            ev->aux2 = -1 - (s64)(__sync_fetch_and_add(moved, (u64)ret) + (u64)ret);
        else
            count_drop(DROP_THREAD_MAP);  /* aux2 stays -1: userspace flags what it reads */
    }
    submit(ev, EVENT_HEADER_SIZE);
    return 0;
}

#if !RAW_EXIT
TRACEPOINT_PROBE(syscalls, sys_enter_sendfile64)
{
    u64 id = target_id();
    if (!id)
        return 0;
    struct conn_info *c = live_conn(id >> 32, args->out_fd);
    if (!c || c->tls)  /* kTLS's SSL_sendfile is not captured (docs/capture.md, Limits) */
        return 0;
    struct sendfile_args a = {.offset_ptr = (u64)args->offset, .out_fd = args->out_fd,
                              .in_fd = args->in_fd, .offset = -1};
    if (a.offset_ptr)
        bpf_probe_read_user(&a.offset, sizeof(a.offset), (void *)a.offset_ptr);
    if (sending.update(&id, &a))
        count_drop(DROP_ARGS_MAP_FULL);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_sendfile64)
{
    u64 id = target_id();
    if (!id)
        return 0;
    struct sendfile_args *a = sending.lookup(&id);
    if (!a)
        return 0;
    struct sendfile_args s = *a;
    sending.delete(&id);
    return on_sendfile_done(id, s, args->ret);
}
#endif  /* !RAW_EXIT */

#if RAW_EXIT
/* ---- one program at the exit of every syscall (raw tracepoint sys_exit) in place of an entry
 * and an exit tracepoint per syscall: the arguments are still in the saved user registers
 * (x86-64 struct pt_regs), so nothing is kept between entry and exit, and a process that is not
 * a target returns after one array lookup. */

/* struct pt_regs from r10 to cs (x86-64 layout, arch/x86/include/asm/ptrace.h) */
struct regs_tail {
    u64 r10, r9, r8, ax, cx, dx, si, di, orig_ax, ip, cs;
};
#define USER64_CS 0x33  /* __USER_CS: a 64-bit syscall (32-bit processes are not captured) */

RAW_TRACEPOINT_PROBE(sys_exit)
{
    u64 id = target_id();
    if (!id)
        return 0;
    struct regs_tail r;
    if (bpf_probe_read_kernel(&r, sizeof(r), (void *)(ctx->args[0] + offsetof(struct pt_regs, r10))))
        return 0;
    long ret = (long)ctx->args[1];
    if (r.cs != USER64_CS || ret < 0)
        return 0;
    struct io_args a = {.buf = r.si, .fd = (s32)r.di};
    int msg = 0;
    switch (r.orig_ax) {
    case 0:   /* read(fd, buf, count) */
        a.dir = DIR_INGRESS;
        break;
    case 45:  /* recvfrom(fd, buf, len, flags, ...) */
        if (r.r10 & MSG_PEEK_FLAG)
            return 0;  /* peeked bytes are read again later */
        a.dir = DIR_INGRESS;
        break;
    case 19:  /* readv(fd, iov, iovcnt) */
        a.dir = DIR_INGRESS;
        a.iovcnt = r.dx;
        break;
    case 47:  /* recvmsg(fd, msg, flags) */
        if (r.dx & MSG_PEEK_FLAG)
            return 0;
        a.dir = DIR_INGRESS;
        msg = 1;
        break;
    case 1:   /* write(fd, buf, count) */
    case 44:  /* sendto(fd, buf, len, flags, ...) */
        a.dir = DIR_EGRESS;
        break;
    case 20:  /* writev(fd, iov, iovcnt) */
        a.dir = DIR_EGRESS;
        a.iovcnt = r.dx;
        break;
    case 46:  /* sendmsg(fd, msg, flags) */
        a.dir = DIR_EGRESS;
        msg = 1;
        break;
    case 40: {  /* sendfile(out_fd, in_fd, offset *, count): *offset has moved by ret */
        struct sendfile_args sf = {.offset_ptr = r.dx, .out_fd = (s32)r.di, .in_fd = (s32)r.si,
                                   .offset = -1};
        if (sf.offset_ptr && bpf_probe_read_user(&sf.offset, sizeof(sf.offset),
                                                 (void *)sf.offset_ptr) == 0)
            sf.offset -= ret;
        else
            sf.offset = -1;
        if (!live_conn(id >> 32, sf.out_fd))
            return 0;
        return on_sendfile_done(id, sf, ret);
    }
    case 43:   /* accept(fd, addr, addrlen) */
    case 288: { /* accept4(fd, addr, addrlen, flags) */
        u32 tgid = id >> 32;
        if (tgid == SELF_TGID)
            return 0;
        u64 key = conn_key(tgid, (s32)r.di);
        if (!listeners.lookup(&key))
            return 0;
        struct accept_args acc = {.addr = r.si, .listen_fd = (s32)r.di};
        return on_accept_done(id, acc, ret);
    }
    default:
        return 0;
    }
    if (ret == 0)
        return 0;
    struct conn_info *c = live_conn(id >> 32, a.fd);
    if (!c || !plain_io(id, c, a.fd))
        return 0;
    if (msg) {  /* the iovec array sits in the struct user_msghdr (msg_iov at 16, msg_iovlen at 24) */
        u64 iov[2] = {};
        if (bpf_probe_read_user(iov, sizeof(iov), (void *)(a.buf + 16))) {
            count_drop(DROP_READ_FAULT);
            return 0;
        }
        a.buf = iov[0];
        a.iovcnt = iov[1];
    }
    return emit_io(ctx, id, c, a, ret);
}
#endif  /* RAW_EXIT */

/* ---- TLS: uprobes on SSL_read, SSL_write, SSL_read_ex, SSL_write_ex, SSL_set_fd of the
 * libssl the target processes map (attached by userspace with --tls). The plaintext is copied
 * at the call's return, through the same chunked emitter, as EV_TLS_DATA events of the
 * connection (tgid, fd) that the SSL object uses (ssl_fds). */

static __always_inline int ssl_enter(struct pt_regs *ctx, u16 dir, int ex)
{
    u64 id = current_id();
    if (!id)
        return 0;
    if ((u32)(id >> 32) == SELF_TGID)
        return 0;
    struct ssl_slot *slot = ssl_slot(id, 1);
    if (!slot) {
        count_drop(DROP_ARGS_MAP_FULL);
        return 0;
    }
    struct ssl_call s = {.ssl = PT_REGS_PARM1(ctx), .buf = PT_REGS_PARM2(ctx),
                         .nbytes = ex ? PT_REGS_PARM4(ctx) : 0, .dir = dir};
    slot->c = s;
    slot->armed = 1;
    return 0;
}

int ssl_read_enter(struct pt_regs *ctx) { return ssl_enter(ctx, DIR_INGRESS, 0); }
int ssl_write_enter(struct pt_regs *ctx) { return ssl_enter(ctx, DIR_EGRESS, 0); }
int ssl_read_ex_enter(struct pt_regs *ctx) { return ssl_enter(ctx, DIR_INGRESS, 1); }
int ssl_write_ex_enter(struct pt_regs *ctx) { return ssl_enter(ctx, DIR_EGRESS, 1); }

/* Return of any of the four: SSL_read/SSL_write return the byte count (<= 0: nothing moved),
 * the _ex variants return 1 and store the count through their fourth argument. */
int ssl_return(struct pt_regs *ctx)
{
    u64 id = current_id();
    if (!id)
        return 0;
    struct ssl_slot *p = ssl_slot(id, 0);
    if (!p || !p->armed)
        return 0;
    struct ssl_call s = p->c;
    p->armed = 0;
    int rc = (int)PT_REGS_RC(ctx);
    u64 n = 0;
    if (s.nbytes) {
        if (rc != 1)
            return 0;
        if (bpf_probe_read_user(&n, sizeof(n), (void *)s.nbytes)) {
            count_drop(DROP_READ_FAULT);
            return 0;
        }
    } else {
        if (rc <= 0)
            return 0;
        n = (u64)rc;
    }
    if (n == 0)
        return 0;

    u32 tgid = id >> 32;
    struct ssl_key sk = {.ssl = s.ssl, .tgid = tgid};
    s32 *fdp = ssl_fds.lookup(&sk);
    s32 fd;
    if (fdp) {
        fd = *fdp;
    } else {  /* a memory-BIO server: the connection this thread just read (see last_read) */
        s32 *lr = last_read.lookup(&id);
        if (!lr || s.dir != DIR_INGRESS)
            return 0;  /* not a tracked connection's SSL object */
        fd = *lr;
    }
    u64 key = conn_key(tgid, fd);
    struct conn_info *c = conns.lookup(&key);
    if (!c)
        return 0;
    if (!fdp) {
        if (!c->hello || (c->ssl && c->ssl != s.ssl))
            return 0;
        if (ssl_fds.update(&sk, &fd))
            count_drop(DROP_CONN_MAP_FULL);
        c->ssl = s.ssl;
        c->tls = 1;
    }
    u16 dir = s.dir & 1;
    u64 start = __sync_fetch_and_add(&c->tls_off[dir], n);

    u32 zero = 0;
    struct event *ev = tls_scratch.lookup(&zero);
    struct emit_state *st = tls_emit_pos.lookup(&zero);
    if (!ev || !st)
        return 0;
    event_header(ev, EV_TLS_DATA, tgid, fd, bpf_ktime_get_ns(), start, n, dir);
    st->remaining = n;
    st->fill = 0;
    st->buf = s.buf;
    st->buf_left = n;
    st->iov = 0;
    st->iov_left = 0;
    return emit_run(ctx, 1);
}

/* SSL_set_fd(ssl, fd): a new TLS connection names its fd before the handshake, so none of its
 * ciphertext is emitted. */
int ssl_set_fd(struct pt_regs *ctx)
{
    u64 id = current_id();
    if (!id)
        return 0;
    u32 tgid = id >> 32;
    if (tgid == SELF_TGID)
        return 0;
    s32 fd = (s32)PT_REGS_PARM2(ctx);
    u64 key = conn_key(tgid, fd);
    struct conn_info *c = conns.lookup(&key);
    if (!c)
        return 0;
    struct ssl_key sk = {.ssl = PT_REGS_PARM1(ctx), .tgid = tgid};
    if (ssl_fds.update(&sk, &fd))
        count_drop(DROP_CONN_MAP_FULL);
    c->ssl = sk.ssl;
    c->tls = 1;
    return 0;
}
