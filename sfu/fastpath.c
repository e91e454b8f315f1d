/* The compiled steps of the forwarding path (types and entry points: fastpath.h).

   sfu_fanout: one call per ingress packet forwards it to every subscriber of its layer in
   the steady case (same source, no resync, not late: RtpForwarder.on_packet's arithmetic
   on the forwarder's fields, which live in a C struct), then sfu_send for each; anything
   else is handed back to Python.

   sfu_send, per forwarded packet and subscriber: copy the packet into the connection's
   buffer; write the rewritten payload type/marker byte, sequence number, timestamp and SSRC
   (and, when the subscriber does transport-cc, the next transport-wide sequence number,
   recorded with the size and send time in the connection's send history, sfu_twcc, which
   sfu.fastpath.TwccHistory reads); SRTP-protect it with libsrtp (called through the
   function pointer pylibsrtp exposes, so nothing links against libsrtp here); sendto it
   on the ICE socket. One call from Python instead of a buffer copy, a struct write, a libsrtp
   call, a bytes slice and an event-loop sendto.

   sfu_unprotect, per received SRTP packet: copy it into the receiver's buffer and
   srtp_unprotect it there (the Python side then takes the clear bytes in one call), instead
   of pylibsrtp's wrapper (an allocation, a buffer copy and three Python calls per packet). */
#include <errno.h>
#include <linux/io_uring.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "fastpath.h"


typedef int (*sfu_protect_fn)(void *ctx, void *rtp_hdr, int *len_ptr);

#define SFU_MAX_IN 1500  /* as the Python path; 36 bytes left for the SRTP tag and MKI */
#define SFU_CACHE_MAX 1536  /* the longest packet the retransmission cache keeps */
#define SFU_TWCC_MASK 8191

static double sfu_monotonic_ms(void)  /* Python's time.monotonic() * 1000 */
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6;
}

/* Rewrite and protect one packet into the connection's buffer: the protected length, or
   -1 too long or too short, -2 protect failed. When the connection does transport-cc and
   the packet has the element (at twcc_off, > 0), the next transport-wide sequence number
   is written there and returned in *twcc_seq (else -1), to be recorded once sent. */
static int sfu_prepare(sfu_conn *c, const char *pkt, int len, int b1, int seq,
                       unsigned int ts, unsigned int ssrc, int twcc_off, int *twcc_seq)
{
    unsigned char *b = c->buf;
    sfu_twcc *t = c->twcc;
    int out;
    *twcc_seq = -1;
    if (len < 12 || len > SFU_MAX_IN)
        return -1;
    memcpy(b, pkt, (size_t)len);
    b[1] = (unsigned char)b1;
    b[2] = (unsigned char)(seq >> 8); b[3] = (unsigned char)seq;
    b[4] = (unsigned char)(ts >> 24); b[5] = (unsigned char)(ts >> 16);
    b[6] = (unsigned char)(ts >> 8);  b[7] = (unsigned char)ts;
    b[8] = (unsigned char)(ssrc >> 24); b[9] = (unsigned char)(ssrc >> 16);
    b[10] = (unsigned char)(ssrc >> 8); b[11] = (unsigned char)ssrc;
    if (t != NULL && twcc_off > 0 && twcc_off + 2 <= len) {
        *twcc_seq = t->assigned = (t->assigned + 1) & 0xFFFF;
        b[twcc_off] = (unsigned char)(*twcc_seq >> 8);
        b[twcc_off + 1] = (unsigned char)*twcc_seq;
    }
    out = len;
    if (((sfu_protect_fn)c->protect)(c->srtp, b, &out) != 0)
        return -2;
    return out;
}

/* A sent packet's transport-wide number, clear size and send time, in the connection's
   send history (sfu.twcc.SendHistory's ring). */
static void sfu_twcc_record(sfu_conn *c, int twcc_seq, int len, double now_ms)
{
    sfu_twcc *t = c->twcc;
    int i = twcc_seq & SFU_TWCC_MASK;
    t->seqs[i] = twcc_seq;
    t->sizes[i] = len;
    t->times[i] = now_ms;
    t->last_recorded = twcc_seq;
}

/* The packet prepared in the connection's buffer (len bytes) to its peer: 0 sent, -1 not. */
static int sfu_conn_sendto(sfu_conn *c, size_t len)
{
    return sendto(c->fd, c->buf, len, 0, (const struct sockaddr *)c->addr,
                  (socklen_t)c->addrlen) < 0 ? -1 : 0;
}

/* >= 0: bytes sent; -1: too long or too short; -2: protect failed; -3: send failed.
   With transport-cc on the connection and the element in the packet (at twcc_off > 0), the
   next transport-wide sequence number is written and, once sent, recorded with the clear
   size and the send time (as MediaTransport.send_rewritten and SendHistory). */
int sfu_send(sfu_conn *c, const char *pkt, int len, int b1, int seq,
             unsigned int ts, unsigned int ssrc, int twcc_off)
{
    int twcc_seq, out = sfu_prepare(c, pkt, len, b1, seq, ts, ssrc, twcc_off, &twcc_seq);
    if (out < 0)
        return out;
    if (sfu_conn_sendto(c, (size_t)out) < 0)
        return -3;
    if (twcc_seq >= 0)
        sfu_twcc_record(c, twcc_seq, len, sfu_monotonic_ms());
    return out;
}

/* The send batch: a fan-out's packets, each protected in its own connection's buffer, go
   to the kernel in one io_uring_enter (IORING_OP_SENDMSG with MSG_DONTWAIT, so a full
   socket buffer fails the send at once, as sendto does) instead of one sendto each: one
   system call per fan-out, not per subscriber. The ring is made at the first fan-out; if
   the kernel has no io_uring (or a sandbox forbids it), or it ever fails, sends go back to
   sendto for good. A batch of one packet goes out with sendto: a ring round trip costs
   more than one system call (benches/README.md has the figures). One event loop per
   process calls the fan-out, as for every step here. */
#define SFU_BATCH 256

static struct {
    int state;           /* 0: not tried yet; 1: on; -1: off (sendto) */
    int fd;
    unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    int n;                               /* queued in this batch */
    struct msghdr msgs[SFU_BATCH];
    struct iovec iovs[SFU_BATCH];
    sfu_dest *dests[SFU_BATCH];
    int lens[SFU_BATCH];                 /* clear lengths */
    int twcc[SFU_BATCH];                 /* transport-wide numbers to record (-1: none) */
} sfu_batch;

static int sfu_batch_setup(void)
{
    struct io_uring_params p;
    uint64_t probe_buf[(sizeof(struct io_uring_probe)
                        + 64 * sizeof(struct io_uring_probe_op)) / 8 + 1];
    struct io_uring_probe *probe = (struct io_uring_probe *)probe_buf;
    size_t sq_size, cq_size;
    unsigned char *sq, *cq;
    void *sqes;
    int fd;
    memset(&p, 0, sizeof(p));
    fd = (int)syscall(__NR_io_uring_setup, SFU_BATCH, &p);
    if (fd < 0)
        return -1;
    /* a ring that cannot send (a kernel before 5.6 has no probe, one before 5.3 no
       SENDMSG) would fail every send with a per-packet error: sendto instead */
    memset(probe_buf, 0, sizeof(probe_buf));
    if (syscall(__NR_io_uring_register, fd, IORING_REGISTER_PROBE, probe, 64) < 0
            || probe->last_op < IORING_OP_SENDMSG
            || !(probe->ops[IORING_OP_SENDMSG].flags & IO_URING_OP_SUPPORTED)) {
        close(fd);
        return -1;
    }
    sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    if (p.features & IORING_FEAT_SINGLE_MMAP) {
        if (cq_size > sq_size)
            sq_size = cq_size;
        cq_size = sq_size;
    }
    sq = mmap(NULL, sq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
              IORING_OFF_SQ_RING);
    if (sq == MAP_FAILED) {
        close(fd);
        return -1;
    }
    cq = sq;
    if (!(p.features & IORING_FEAT_SINGLE_MMAP)) {
        cq = mmap(NULL, cq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                  IORING_OFF_CQ_RING);
        if (cq == MAP_FAILED) {
            munmap(sq, sq_size);
            close(fd);
            return -1;
        }
    }
    sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (sqes == MAP_FAILED) {
        if (cq != sq)
            munmap(cq, cq_size);
        munmap(sq, sq_size);
        close(fd);
        return -1;
    }
    sfu_batch.fd = fd;
    sfu_batch.sq_tail = (unsigned *)(sq + p.sq_off.tail);
    sfu_batch.sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    sfu_batch.sq_array = (unsigned *)(sq + p.sq_off.array);
    sfu_batch.cq_head = (unsigned *)(cq + p.cq_off.head);
    sfu_batch.cq_tail = (unsigned *)(cq + p.cq_off.tail);
    sfu_batch.cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    sfu_batch.cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    sfu_batch.sqes = sqes;
    return 0;
}

/* 1: fan-outs send in batches; -1: with sendto; 0: not decided yet (no fan-out so far). */
int sfu_batch_state(void)
{
    return sfu_batch.state;
}

/* sendto from now on (for A/B measurements; SFU_BATCH_SEND=0). */
void sfu_batch_disable(void)
{
    sfu_batch.state = -1;
}

static void sfu_batch_done(int i, int res, double now_ms)
{
    sfu_dest *d = sfu_batch.dests[i];
    d->conn->pending = 0;
    if (res >= 0) {
        d->packets++;
        d->bytes += sfu_batch.lens[i];
        if (sfu_batch.twcc[i] >= 0)
            sfu_twcc_record(d->conn, sfu_batch.twcc[i], sfu_batch.lens[i], now_ms);
    } else {
        d->errors++;
    }
}

/* Entries from..n-1 of the batch, each with sendto, and their results counted. */
static void sfu_batch_sendto(int from, int n)
{
    int i, res[SFU_BATCH];
    double now_ms;
    for (i = from; i < n; i++)
        res[i] = sfu_conn_sendto(sfu_batch.dests[i]->conn, sfu_batch.iovs[i].iov_len);
    now_ms = sfu_monotonic_ms();
    for (i = from; i < n; i++)
        sfu_batch_done(i, res[i], now_ms);
}

/* Send what is queued and count the results. If the ring fails, what it did not take is
   sent with sendto and the ring is not used again. */
static void sfu_batch_flush(void)
{
    int n = sfu_batch.n, submitted = 0, reaped = 0, waits = 0, i;
    double now_ms;
    if (n == 0)
        return;
    sfu_batch.n = 0;
    if (n == 1 || sfu_batch.state < 0) {  /* one packet (sendto costs less), or no ring */
        sfu_batch_sendto(0, n);
        return;
    }
    __atomic_store_n(sfu_batch.sq_tail, *sfu_batch.sq_tail + (unsigned)n, __ATOMIC_RELEASE);
    while (submitted < n) {
        int r = (int)syscall(__NR_io_uring_enter, sfu_batch.fd, n - submitted,
                             n - submitted, IORING_ENTER_GETEVENTS, NULL, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        submitted += r;
    }
    while (reaped < submitted) {
        unsigned head = *sfu_batch.cq_head;
        unsigned tail = __atomic_load_n(sfu_batch.cq_tail, __ATOMIC_ACQUIRE);
        if (head == tail) {
            int r = (int)syscall(__NR_io_uring_enter, sfu_batch.fd, 0, submitted - reaped,
                                 IORING_ENTER_GETEVENTS, NULL, 0);
            /* a send the kernel still holds may read its buffer: wait through transient
               errors (with MSG_DONTWAIT sends complete during the submission, so this
               loop does not normally run at all) */
            if (r < 0 && errno != EINTR && !((errno == EAGAIN || errno == EBUSY)
                                             && ++waits < 100000))
                break;
            continue;
        }
        now_ms = sfu_monotonic_ms();
        for (; head != tail; head++) {
            struct io_uring_cqe *cqe = &sfu_batch.cqes[head & *sfu_batch.cq_mask];
            if (cqe->user_data < (uint64_t)n)
                sfu_batch_done((int)cqe->user_data, cqe->res, now_ms);
            reaped++;
        }
        __atomic_store_n(sfu_batch.cq_head, head, __ATOMIC_RELEASE);
    }
    if (submitted < n || reaped < submitted) {  /* the ring failed: never again */
        sfu_batch.state = -1;
        sfu_batch_sendto(submitted, n);
        now_ms = sfu_monotonic_ms();
        for (i = 0; i < submitted; i++)  /* completions never seen: counted as failed */
            if (sfu_batch.dests[i]->conn->pending)
                sfu_batch_done(i, -1, now_ms);
    }
}

/* Protect one packet into its connection's buffer and queue it (with the ring off, the
   flush right away sends it with sendto). */
static void sfu_batch_send(sfu_dest *d, const char *pkt, int len, int b1, int seq,
                           unsigned int ts, int twcc_off)
{
    sfu_conn *c = d->conn;
    struct io_uring_sqe *sqe;
    unsigned idx;
    int i, out, twcc_seq;
    if (sfu_batch.state == 0)
        sfu_batch.state = sfu_batch_setup() == 0 ? 1 : -1;
    if (c->pending || sfu_batch.n == SFU_BATCH)  /* its buffer is taken, or the batch full */
        sfu_batch_flush();
    out = sfu_prepare(c, pkt, len, b1, seq, ts, d->out_ssrc, twcc_off, &twcc_seq);
    if (out < 0) {
        d->errors++;
        return;
    }
    i = sfu_batch.n++;
    sfu_batch.iovs[i].iov_base = c->buf;
    sfu_batch.iovs[i].iov_len = (size_t)out;
    sfu_batch.dests[i] = d;
    sfu_batch.lens[i] = len;
    sfu_batch.twcc[i] = twcc_seq;
    c->pending = 1;
    if (sfu_batch.state < 0) {  /* no ring (or the flush above turned it off) */
        sfu_batch_flush();
        return;
    }
    memset(&sfu_batch.msgs[i], 0, sizeof(struct msghdr));
    sfu_batch.msgs[i].msg_name = c->addr;
    sfu_batch.msgs[i].msg_namelen = c->addrlen;
    sfu_batch.msgs[i].msg_iov = &sfu_batch.iovs[i];
    sfu_batch.msgs[i].msg_iovlen = 1;
    idx = (*sfu_batch.sq_tail + (unsigned)i) & *sfu_batch.sq_mask;
    sqe = &sfu_batch.sqes[idx];
    memset(sqe, 0, sizeof(*sqe));
    sqe->opcode = IORING_OP_SENDMSG;
    sqe->fd = c->fd;
    sqe->addr = (uint64_t)(uintptr_t)&sfu_batch.msgs[i];
    sqe->len = 1;
    sqe->msg_flags = MSG_DONTWAIT;
    sqe->user_data = (uint64_t)i;
    sfu_batch.sq_array[idx] = idx;
}

/* One SRTP packet in: copied into rx->buf and unprotected there. >= 0: the length of the
   clear packet; -1: too short or too long; -2: authentication (or replay check) failed. */
int sfu_unprotect(sfu_rx *rx, const char *pkt, int len)
{
    int out = len;
    if (len < 12 || len > (int)sizeof(rx->buf))
        return -1;
    memcpy(rx->buf, pkt, (size_t)len);
    if (((sfu_protect_fn)rx->unprotect)(rx->srtp, rx->buf, &out) != 0)
        return -2;
    return out;
}

/* sfu.rtp_header.rewrite_extension_ids on a copy: pkt (len <= 1500, a valid RTP header)
   is copied to out, header extension ids are rewritten through id_map (256 bytes, 0 =
   blank the element with zero bytes), the payload type byte is set to pt (marker kept),
   and a_off | b_off << 16 is returned: where the values of the elements now numbered a_id
   (2 bytes long only) and b_id start (first of each; 0 if absent). -1: bad length. */
static long sfu_rewrite_at(unsigned char *out, int len, const unsigned char *id_map,
                           int a_id, int b_id, int pt)
{
    long found = 0;
    int start, end, i, profile;
    out[1] = (unsigned char)((out[1] & 0x80) | (pt & 0x7F));
    if (!(out[0] & 0x10))
        return 0;
    start = 12 + 4 * (out[0] & 0x0F);
    if (len < start + 4)
        return 0;
    profile = (out[start] << 8) | out[start + 1];
    end = start + 4 + 4 * ((out[start + 2] << 8) | out[start + 3]);
    if (end > len)
        end = len;
    i = start + 4;
    if (profile == 0xBEDE) {
        while (i < end) {
            int b = out[i], ext_id, length, new_id;
            if (b == 0) { i++; continue; }
            ext_id = b >> 4;
            length = (b & 0x0F) + 1;
            if (ext_id == 15)
                return found;
            if (i + 1 + length > end) {
                memset(out + i, 0, (size_t)(end - i));
                return found;
            }
            new_id = id_map[ext_id];
            if (new_id == 0) {
                memset(out + i, 0, (size_t)(1 + length));
            } else {
                if (new_id != ext_id)
                    out[i] = (unsigned char)((new_id << 4) | (b & 0x0F));
                if (new_id == a_id) {
                    if (length == 2 && !(found & 0xFFFF))
                        found |= i + 1;
                } else if (new_id == b_id && !(found >> 16)) {
                    found |= (long)(i + 1) << 16;
                }
            }
            i += 1 + length;
        }
    } else if ((profile >> 4) == 0x100) {
        while (i + 1 < end) {
            int ext_id = out[i], length, new_id;
            if (ext_id == 0) { i++; continue; }
            length = out[i + 1];
            if (i + 2 + length > end) {
                memset(out + i, 0, (size_t)(end - i));
                return found;
            }
            new_id = id_map[ext_id];
            if (new_id == 0) {
                memset(out + i, 0, (size_t)(2 + length));
            } else {
                out[i] = (unsigned char)new_id;
                if (new_id == a_id) {
                    if (length == 2 && !(found & 0xFFFF))
                        found |= i + 2;
                } else if (new_id == b_id && length && !(found >> 16)) {
                    found |= (long)(i + 2) << 16;
                }
            }
            i += 2 + length;
        }
    }
    return found;
}

long sfu_rewrite(const char *pkt, int len, const char *id_map, int a_id, int b_id, int pt,
                 char *out)
{
    if (len < 12 || len > SFU_MAX_IN)
        return -1;
    memcpy(out, pkt, (size_t)len);
    return sfu_rewrite_at((unsigned char *)out, len, (const unsigned char *)id_map, a_id,
                          b_id, pt);
}

/* sfu.payload.vp8_keyframe at the payload of an RTP packet: 1 if it starts a VP8 keyframe
   (S=1, PID=0, frame tag P bit 0), 0 otherwise (also for short or bad input). */
int sfu_vp8_keyframe(const char *pkt_s, int len)
{
    const unsigned char *pkt = (const unsigned char *)pkt_s;
    int off, i, b;
    if (len < 12 || (pkt[0] >> 6) != 2)
        return 0;
    off = 12 + 4 * (pkt[0] & 0x0F);
    if (pkt[0] & 0x10) {
        if (len < off + 4)
            return 0;
        off += 4 + 4 * ((pkt[off + 2] << 8) | pkt[off + 3]);
    }
    if (off >= len)
        return 0;
    b = pkt[off];
    if (!(b & 0x10) || (b & 0x07))
        return 0;
    i = off + 1;
    if (b & 0x80) {
        int ext;
        if (i >= len)
            return 0;
        ext = pkt[i++];
        if (ext & 0x80) {
            if (i >= len)
                return 0;
            i += (pkt[i] & 0x80) ? 2 : 1;
        }
        if (ext & 0x40)
            i++;
        if (ext & (0x20 | 0x10))
            i++;
    }
    return i < len && !(pkt[i] & 0x01);
}

/* The retransmission cache: the last SFU_CACHE_SIZE packets of one source by extended
   sequence number, each slot a malloc'd buffer that grows to the largest packet it held
   (so memory is what the packets take, as with Python bytes). NULL: out of memory. */
sfu_cache *sfu_cache_new(void)
{
    sfu_cache *c = calloc(1, sizeof(sfu_cache));
    int i;
    if (c != NULL)
        for (i = 0; i < SFU_CACHE_SIZE; i++)
            c->exts[i] = -1;
    return c;
}

void sfu_cache_free(sfu_cache *c)
{
    int i;
    if (c == NULL)
        return;
    for (i = 0; i < SFU_CACHE_SIZE; i++)
        free(c->pkts[i]);
    free(c);
}

/* 0: kept; -1: bad length or out of memory (the slot is then empty: a miss later). */
int sfu_cache_put(sfu_cache *c, int64_t ext, const char *pkt, int len)
{
    int i = (int)(ext & (SFU_CACHE_SIZE - 1));
    if (len <= 0 || len > SFU_CACHE_MAX) {
        c->exts[i] = -1;
        return -1;
    }
    if (c->caps[i] < len) {
        unsigned char *grown = realloc(c->pkts[i], (size_t)len);
        if (grown == NULL) {
            c->exts[i] = -1;
            return -1;
        }
        c->pkts[i] = grown;
        c->caps[i] = len;
    }
    memcpy(c->pkts[i], pkt, (size_t)len);
    c->lens[i] = len;
    c->exts[i] = ext;
    return 0;
}

/* The packet's length, copied to out (SFU_CACHE_MAX bytes); -1: not cached. */
int sfu_cache_get(sfu_cache *c, int64_t ext, char *out)
{
    int i = (int)(ext & (SFU_CACHE_SIZE - 1));
    if (ext < 0 || c->exts[i] != ext) {
        c->misses++;
        return -1;
    }
    c->hits++;
    memcpy(out, c->pkts[i], (size_t)c->lens[i]);
    return c->lens[i];
}

/* One ingress packet to every subscriber of its layer: RtpForwarder.on_packet's steady
   case (same source, no resync, not late) then sfu_send. Anything else (a source switch,
   a resync, a late packet, a subscriber without a compiled connection) is left to Python:
   status 1, state untouched. Returns how many were left to Python. */
int sfu_fanout(const char *pkt, int len, int b1, uint32_t ssrc, int64_t ext,
               uint32_t ts, double now_ms, int twcc_off, sfu_dest **dests, int n)
{
    int i, left = 0;
    for (i = 0; i < n; i++) {
        sfu_dest *d = dests[i];
        sfu_fwd *f = d->fwd;
        int64_t out_ext, out_ts;
        if (d->conn == NULL || f->resync || f->source_ssrc != (int64_t)ssrc
                || ext < f->start_ext) {
            d->status = 1;
            left++;
            continue;
        }
        d->status = 0;
        out_ext = ext + f->seq_offset;
        out_ts = ((int64_t)ts + f->ts_offset) & 0xFFFFFFFFLL;
        if (out_ext > f->last_out_ext) {
            f->last_out_ext = out_ext;
            f->last_out_ts = out_ts;
            f->last_out_ms = now_ms;
            f->has_last_out = 1;
        }
        f->forwarded++;
        sfu_batch_send(d, pkt, len, b1, (int)(out_ext & 0xFFFF), (unsigned int)out_ts,
                       twcc_off);
    }
    if (sfu_batch.n)
        sfu_batch_flush();
    return left;
}

/* sfu.sequence.SequenceTracker.update on a C state (the same results and fields; the
   512-packet window as 8 words). */
#define SFU_REORDER_WINDOW 512
#define SFU_MAX_NACK_GAP 64

void sfu_seq_init(sfu_seq *s, int clock_rate)
{
    memset(s, 0, sizeof(*s));
    s->base_ext = s->max_ext = s->bad_seq = -1;
    s->clock_rate = clock_rate;
}

static void sfu_seq_jitter(sfu_seq *s, uint32_t ts, double now_ms)
{
    double transit = now_ms * (double)s->clock_rate / 1000.0 - (double)ts;
    if (s->has_transit) {
        double d = transit - s->last_transit;
        if (d < 0)
            d = -d;
        if (d < (double)s->clock_rate * 10)
            s->jitter += (d - s->jitter) / 16.0;
    }
    s->last_transit = transit;
    s->has_transit = 1;
}

static void sfu_window_shift(uint64_t *w, int n)  /* w = (w << n) | 1, 512 bits */
{
    int i, words = n / 64, bits = n % 64;
    if (n >= SFU_REORDER_WINDOW) {
        memset(w, 0, 8 * sizeof(uint64_t));
    } else {
        for (i = 7; i >= 0; i--) {
            int from = i - words;
            uint64_t v = 0;
            if (from >= 0) {
                v = w[from] << bits;
                if (bits && from > 0)
                    v |= w[from - 1] >> (64 - bits);
            }
            w[i] = v;
        }
    }
    w[0] |= 1;
}

int64_t sfu_seq_update(sfu_seq *s, int seq, uint32_t ts, double now_ms)
{
    int64_t max_ext = s->max_ext, ext;
    int diff;
    if (max_ext < 0) {
        s->base_ext = s->max_ext = seq;
        memset(s->window, 0, sizeof(s->window));
        s->window[0] = 1;
        s->received = 1;
        sfu_seq_jitter(s, ts, now_ms);
        return seq;
    }
    diff = (int)((seq - max_ext) & 0xFFFF);
    if (diff == 0) {
        s->duplicates++;
        return -1;
    }
    if (diff < 0x8000) {
        ext = max_ext + diff;
        if (diff > 1 && diff <= SFU_MAX_NACK_GAP) {
            s->miss_from = max_ext + 1;
            s->miss_to = ext;
        } else {
            s->miss_from = s->miss_to = 0;
        }
        sfu_window_shift(s->window, diff);
        s->max_ext = ext;
    } else {
        int back = 0x10000 - diff;
        uint64_t bit;
        s->miss_from = s->miss_to = 0;
        if (back >= SFU_REORDER_WINDOW) {
            if (seq != s->bad_seq) {
                s->bad_seq = (seq + 1) & 0xFFFF;
                s->late++;
                return -1;
            }
            ext = max_ext + diff;
            s->base_ext += diff - 1;
            s->max_ext = ext;
            memset(s->window, 0, sizeof(s->window));
            s->window[0] = 1;
            s->bad_seq = -1;
            s->restarts++;
            s->received++;
            s->has_transit = 0;
            return ext;
        }
        bit = (uint64_t)1 << (back % 64);
        if (s->window[back / 64] & bit) {
            s->duplicates++;
            return -1;
        }
        s->window[back / 64] |= bit;
        ext = max_ext - back;
        if (ext < s->base_ext)
            s->base_ext = ext;
    }
    s->received++;
    sfu_seq_jitter(s, ts, now_ms);
    return ext;
}

/* sfu.twcc.TwccRecorder.on_packet: one packet's transport-wide number and arrival time,
   unwrapped to an extended number; a jump forward of more than 1024 (MAX_FORWARD_JUMP)
   starts afresh, and unreported arrivals older than the ring are forgotten. */
static void sfu_twcc_rx_forget(sfu_twcc_rx *t, int64_t new_next)
{
    int64_t ext, end = t->max_ext + 1 < new_next ? t->max_ext + 1 : new_next;
    int64_t mask = t->size - 1;
    for (ext = t->next_ext; ext < end; ext++) {
        if (!isnan(t->arrivals[ext & mask]))
            t->forgotten++;
        t->arrivals[ext & mask] = NAN;
    }
    t->next_ext = new_next;
}

void sfu_twcc_rx_packet(sfu_twcc_rx *t, int seq, double arrival_ms)
{
    int64_t mx = t->max_ext, ext, diff, mask = t->size - 1;
    if (mx < 0) {
        ext = (seq & 0xFFFF) + 65536;  /* keeps extended numbers positive going back */
        t->next_ext = t->max_ext = ext;
        t->arrivals[ext & mask] = arrival_ms;
        return;
    }
    diff = ((int64_t)seq - mx) & 0xFFFF;
    ext = diff < 0x8000 ? mx + diff : mx + diff - 65536;
    if (ext < t->next_ext) {
        if (t->reported || mx - ext >= t->size) {
            t->late++;
            return;
        }
        t->next_ext = ext;  /* reordered before the first feedback: widen the window */
    } else if (ext > mx) {
        if (ext - mx > 1024) {
            sfu_twcc_rx_forget(t, mx + 1);
            t->next_ext = ext;
        } else if (ext - t->next_ext >= t->size) {
            sfu_twcc_rx_forget(t, ext - t->size + 1);
        }
        t->max_ext = ext;
    }
    if (!isnan(t->arrivals[ext & mask])) {
        t->duplicates++;
        return;
    }
    t->arrivals[ext & mask] = arrival_ms;
}

/* Flags sfu_ingress returns (with 1 set) for what is left to Python. */
#define SFU_IN_DONE 1
#define SFU_IN_TWCC 2    /* rx->twcc_seq: the publisher's transport-wide number */
#define SFU_IN_LEVEL 4   /* rx->level: an audio level to report */
#define SFU_IN_NACK 8    /* the source's seq->miss_from/miss_to: NACK them upstream */
#define SFU_IN_LEFT 16   /* subscribers left to Python (dest status 1, or no compiled view) */
#define SFU_IN_GATE 32   /* a closed speech gate's loud packet: not forwarded; Python asks the
                            room's selection whether to open it (and then forwards it) */

/* sfu.speech_gate.gate_step: 0 forward, 1 suppress (counted), 2 ask. */
static int sfu_gate_step(sfu_track *tr, int level_byte, double now_ms)
{
    int loud = (level_byte & 0x7F) < tr->gate_threshold;
    if (loud)
        tr->gate_last_loud_ms = now_ms;
    if (tr->gate_open) {
        if (loud || now_ms - tr->gate_last_loud_ms <= tr->gate_hold_ms)
            return 0;
        tr->gate_open = 0;
    }
    if (loud)
        return 2;
    tr->gate_suppressed++;
    return 1;
}

/* One datagram from a publisher's ICE socket (its first byte says RTP or RTCP).
   2: RTCP, untouched (Python unprotects it). -1: too short or too long. -2: SRTP
   authentication failed. 0: the clear RTP packet is in rx->buf (rx->len bytes, arrived
   at rx->now_ms), for PublishedTrack.on_rtp's Python path: nothing was changed. > 0: the
   steady case was handled (PublishedTrack.on_rtp's work, the retransmission cache
   included): a known source of a VP8 or audio track, in order or after a gap, not a
   keyframe, with a fan-out plan of the current topology; the flags say what Python has
   left to do (1: nothing; rx->buf then holds the packet as rewritten). */
int64_t sfu_ingress_handled = 0;

int sfu_ingress(sfu_rx *rx, const char *pkt, int len)
{
    unsigned char *b = rx->buf;
    const unsigned char *p = (const unsigned char *)pkt;
    sfu_src *src = NULL;
    sfu_seq *sq;
    sfu_track *tr;
    sfu_layer *la;
    uint32_t ssrc, ts;
    int i, hlen, diff, seq, flags = SFU_IN_DONE, twcc_off, gate = 0;
    int64_t ext;
    long offsets;
    if (len < 12 || len > (int)sizeof(rx->buf))
        return -1;
    if (p[1] >= 192 && p[1] <= 223)
        return 2;
    memcpy(b, pkt, (size_t)len);
    rx->len = len;
    if (((sfu_protect_fn)rx->unprotect)(rx->srtp, b, &rx->len) != 0)
        return -2;
    len = rx->len;
    rx->now_ms = sfu_monotonic_ms();
    if (rx->version < 0 || len < 12 || (b[0] >> 6) != 2)
        return 0;
    hlen = 12 + 4 * (b[0] & 0x0F);
    if (b[0] & 0x10) {
        if (len < hlen + 4)
            return 0;
        hlen += 4 + 4 * ((b[hlen + 2] << 8) | b[hlen + 3]);
    }
    if (hlen > len || len > SFU_MAX_IN)
        return 0;
    ssrc = ((uint32_t)b[8] << 24) | ((uint32_t)b[9] << 16) | ((uint32_t)b[10] << 8) | b[11];
    for (i = 0; i < rx->nsrc; i++) {
        if (rx->srcs[i].ssrc == ssrc) {
            src = &rx->srcs[i];
            break;
        }
    }
    if (src == NULL)
        return 0;
    sq = src->seq;
    tr = src->track;
    la = src->layer;
    seq = (b[2] << 8) | b[3];
    diff = (int)((seq - sq->max_ext) & 0xFFFF);
    if ((b[1] & 0x7F) != tr->publisher_pt || sq->max_ext < 0 || diff == 0 || diff >= 0x8000
            || la->plan_version < 0
            || (tr->video && sfu_vp8_keyframe((const char *)b, len)))
        return 0;
    /* from here on, the packet is handled here */
    ts = ((uint32_t)b[4] << 24) | ((uint32_t)b[5] << 16) | ((uint32_t)b[6] << 8) | b[7];
    offsets = sfu_rewrite_at(b, len, tr->id_map, 3, 1, tr->pt);  /* TWCC_ID, AUDIO_LEVEL_ID */
    twcc_off = (int)(offsets & 0xFFFF);
    if (twcc_off && tr->twcc) {
        rx->twcc_seq = (b[twcc_off] << 8) | b[twcc_off + 1];
        if (tr->twcc_rx != NULL)
            sfu_twcc_rx_packet(tr->twcc_rx, rx->twcc_seq, rx->now_ms);
        else
            flags |= SFU_IN_TWCC;
    }
    ext = sfu_seq_update(sq, seq, ts, rx->now_ms);
    tr->packets_in++;
    tr->bytes_in += len;
    la->packets++;
    la->bytes += len;
    la->last_packet_ms = rx->now_ms;
    if (tr->video) {
        if (sq->miss_to > sq->miss_from)
            flags |= SFU_IN_NACK;
        if (b[1] & 0x80)
            la->frames++;
    } else {
        if ((offsets >> 16) && tr->level) {
            rx->level = b[offsets >> 16];
            flags |= SFU_IN_LEVEL;
        }
        if (tr->gate)
            gate = sfu_gate_step(tr, (offsets >> 16) ? b[offsets >> 16] : 127, rx->now_ms);
    }
    sfu_cache_put(src->cache, ext, (const char *)b, len);
    if (gate == 2)
        flags |= SFU_IN_GATE;
    if (gate == 0) {  /* (1: a silent packet of a closed gate, not forwarded) */
        if (la->n && sfu_fanout((const char *)b, len, b[1], ssrc, ext, ts, rx->now_ms,
                                twcc_off, la->dests, la->n))
            flags |= SFU_IN_LEFT;
        if (la->python_subs)
            flags |= SFU_IN_LEFT;
    }
    rx->src = src->index;
    rx->ext = ext;
    rx->ssrc = ssrc;
    rx->ts = ts;
    rx->twcc_off = twcc_off;
    sfu_ingress_handled++;
    return flags;
}
