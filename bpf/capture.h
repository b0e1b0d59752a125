/* rewind capture probe: the event layout shared by bpf/capture.bpf.c and its Python mirror
 * (sidecar/capture/events.py, checked against this file by tests/bpf/test_layout.py).
 *
 * The kernel only copies bytes; userspace understands them. One syscall's data leaves the
 * kernel as one or more chunks, each with the offset of its first byte (pos) within the
 * syscall's bytes and the syscall's full byte count (total), so userspace can see when a
 * chunk is missing. */
#ifndef REWIND_CAPTURE_H
#define REWIND_CAPTURE_H

/* Bytes of payload one event carries at most. The event is built in a per-CPU scratch map,
 * whose values the kernel limits to 32 KiB. Power of two. */
#ifndef CHUNK_SIZE
#define CHUNK_SIZE 16384
#endif

/* Chunks one program run emits before it tail-calls itself to continue. */
#ifndef CHUNKS_PER_RUN
#define CHUNKS_PER_RUN 32
#endif

/* Connections tracked at once (the `conns` map). */
#ifndef MAX_CONNS
#define MAX_CONNS 65536
#endif

/* Slots of the `targets` array (power of two): a process is looked up at slot tgid & (slots-1). */
#ifndef TARGET_SLOTS
#define TARGET_SLOTS 65536
#endif

/* iovec entries looked at per readv/writev/recvmsg/sendmsg; bytes in later entries are not
 * emitted: counted as DROP_IOV_LIMIT, and userspace sees them as lost bytes (emit_run). */
#ifndef MAX_IOV
#define MAX_IOV 64
#endif

/* Ring buffer size in 4 KiB pages (power of two). */
#ifndef RINGBUF_PAGES
#define RINGBUF_PAGES 16384
#endif

/* Entries of each per-thread map (syscall arguments between entry and exit). LRU: the entry of
 * a thread that never came back (killed in the call) is evicted, not kept for ever. */
#ifndef THREAD_SLOTS
#define THREAD_SLOTS 10240
#endif

/* 1 where the kernel has BTF (/sys/kernel/btf/vmlinux): per-thread syscall state lives in BPF
 * task storage (bpf_get_current_task_btf); 0: in LRU hashes keyed by pid_tgid instead. */
#ifndef TASK_STORAGE
#define TASK_STORAGE 1
#endif

/* 1: one raw tracepoint program at every syscall's exit (sys_exit) handles the read, write,
 * sendfile and accept families, taking their arguments from the saved registers; 0 (default):
 * an entry and an exit tracepoint program per syscall, the arguments kept per thread in
 * between. Measured (docs/capture.md, OVERHEAD): 1 is cheaper for a server that makes few
 * syscalls besides its socket I/O (nginx: x0.91 kernel time per request) and dearer for one
 * that makes many (Flask/gunicorn: x1.16), since sys_exit runs for every syscall of every
 * process on the machine. */
#ifndef RAW_EXIT
#define RAW_EXIT 0
#endif

/* Ring-buffer wake-ups in batches. A record is submitted without waking the reader
 * (BPF_RB_NO_WAKEUP) until the CPU it was written on has submitted WAKEUP_BYTES since its last
 * wake-up; that record wakes the reader (BPF_RB_FORCE_WAKEUP). The reader also looks at the ring
 * every WAKEUP_MS on its own (sidecar/capture/probe.py), which bounds how long a record waits
 * when traffic is light. 0: the kernel's default, a wake-up whenever the reader has caught up,
 * which at a few thousand requests per second is nearly every record. */
#ifndef WAKEUP_BYTES
#define WAKEUP_BYTES 65536
#endif

/* 1 with --tls: the read exits also keep what the libssl uprobes need (last_read, hello). */
#ifndef TLS
#define TLS 0
#endif

/* tgid of the sidecar itself, in its own PID namespace: never traced. */
#ifndef SELF_TGID
#define SELF_TGID 0
#endif

/* The PID namespace the sidecar runs in (st_dev and st_ino of its /proc/self/ns/pid) when that
 * is not the host's, as in a pod with shareProcessNamespace: process and thread ids are then
 * taken in that namespace (bpf_get_ns_current_pid_tgid), as the sidecar's /proc shows them, and
 * a process in any other namespace is not traced. PIDNS_INO 0: the host's namespace, whose ids
 * bpf_get_current_pid_tgid() gives (and which sees every process). */
#ifndef PIDNS_DEV
#define PIDNS_DEV 0
#endif
#ifndef PIDNS_INO
#define PIDNS_INO 0
#endif

enum event_kind {
    EV_ACCEPT = 1,   /* fd = new connection, aux = listening fd, peer address filled */
    EV_DATA = 2,     /* a chunk of one syscall's bytes */
    EV_CLOSE = 3,    /* fd closed */
    EV_SENDFILE = 4, /* total bytes sent from file aux at offset aux2; aux2 < 0: from the file
                        position, and -1 - aux2 is the process's running total of such bytes
                        from that fd after this call (0: unknown) */
    EV_TLS_DATA = 5, /* a chunk of the plaintext of one SSL_read/SSL_write (and _ex) call;
                        pos is an offset in the connection's plaintext stream */
};

enum direction {
    DIR_INGRESS = 0, /* read by the server: request bytes */
    DIR_EGRESS = 1,  /* written by the server: response bytes */
};

enum drop_reason { /* index of the `drops` map; names in sidecar/capture/metrics.py */
    DROP_RINGBUF_FULL = 0,
    DROP_CONN_MAP_FULL = 1,
    DROP_ARGS_MAP_FULL = 2,
    DROP_READ_FAULT = 3,
    DROP_TOO_LARGE = 4,
    DROP_IOV_LIMIT = 5,   /* a vectored call moved bytes beyond the MAX_IOV entries followed */
    DROP_THREAD_MAP = 6,  /* a per-thread map update failed (last_read) */
    DROP_NR = 7,
};

struct event {
    __u64 ts_ns;      /* bpf_ktime_get_ns() at syscall exit (same for every chunk of a call) */
    __u64 pos;        /* offset of data[0] within the syscall's bytes */
    __u64 total;      /* bytes the syscall moved (its return value) */
    __u64 aux;        /* EV_ACCEPT: listening fd; EV_SENDFILE: in_fd; EV_CLOSE: 1 if TLS */
    __s64 aux2;       /* EV_SENDFILE: file offset or -1 */
    __u32 tgid;
    __s32 fd;
    __u32 len;        /* payload bytes in data */
    __u16 kind;       /* enum event_kind */
    __u16 dir;        /* enum direction */
    __u16 family;     /* EV_ACCEPT: AF_INET / AF_INET6, 0 when accept() got no address */
    __u16 port;       /* EV_ACCEPT: peer port, host order */
    __u8 addr[16];    /* EV_ACCEPT: peer address (4 bytes for AF_INET) */
    __u32 _pad;
    __u8 data[CHUNK_SIZE];
};

#define EVENT_HEADER_SIZE (sizeof(struct event) - CHUNK_SIZE)

#endif
