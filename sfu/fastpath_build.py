"""Build the compiled steps of the forwarding path (``sfu._fastpath``, cffi, C).

    python -m sfu.fastpath_build

``scripts/setup.sh`` runs it (it needs a C compiler and the Python headers). Without the
module the server runs the same logic in Python (:mod:`sfu.fastpath`), slower.

``sfu_fanout``: one call per ingress packet forwards it to every subscriber of its layer in
the steady case (same source, no resync, not late: ``RtpForwarder.on_packet``'s arithmetic
on the forwarder's fields, which live in a C struct), then ``sfu_send`` for each; anything
else is handed back to Python.

``sfu_send``, per forwarded packet and subscriber: copy the packet into the connection's
buffer; write the rewritten payload type/marker byte, sequence number, timestamp and SSRC
(and, when the subscriber does transport-cc, the next transport-wide sequence number,
recorded with the size and send time in the connection's send history, ``sfu_twcc``, which
:class:`sfu.fastpath.TwccHistory` reads); SRTP-protect it with libsrtp (called through the
function pointer pylibsrtp exposes, so nothing links against libsrtp here); ``sendto`` it
on the ICE socket. One call from Python instead of a buffer copy, a struct write, a libsrtp
call, a bytes slice and an event-loop ``sendto``.

``sfu_unprotect``, per received SRTP packet: copy it into the receiver's buffer and
``srtp_unprotect`` it there (the Python side then takes the clear bytes in one call), instead
of pylibsrtp's wrapper (an allocation, a buffer copy and three Python calls per packet).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

STRUCTS = """
typedef struct {         /* transport-wide congestion control of one sending connection */
    int32_t assigned;    /* the last transport-wide sequence number written (0 at first) */
    int32_t last_recorded;          /* -1: nothing sent yet */
    int32_t seqs[8192];  /* sfu.twcc.SendHistory's ring: seq, clear size, send time (ms) */
    int32_t sizes[8192];
    double times[8192];
} sfu_twcc;

typedef struct {
    void *srtp;          /* srtp_t of the sending direction */
    void *protect;       /* srtp_protect */
    int fd;              /* the ICE socket */
    int connected;       /* the socket is connect()ed to the peer: send() without a route
                            lookup per packet */
    unsigned int addrlen;
    unsigned char addr[28];  /* struct sockaddr_in or sockaddr_in6 of the peer */
    sfu_twcc *twcc;      /* NULL: the peer did not negotiate transport-cc */
    unsigned char buf[1536];
} sfu_conn;

typedef struct {
    void *srtp;          /* srtp_t of the receiving direction */
    void *unprotect;     /* srtp_unprotect */
    unsigned char buf[1536];
} sfu_rx;

typedef struct {         /* RtpForwarder's per-packet fields (sfu.forwarder.ForwarderState) */
    int64_t source_ssrc;
    int64_t seq_offset;
    int64_t ts_offset;
    int64_t start_ext;
    int64_t last_out_ext;
    int64_t last_out_ts;
    double last_out_ms;
    int has_last_out;
    int resync;
    int64_t forwarded;
} sfu_fwd;

typedef struct {         /* one subscription */
    sfu_fwd *fwd;
    sfu_conn *conn;      /* NULL: this subscriber takes the Python path */
    uint32_t out_ssrc;
    int status;          /* after sfu_fanout: 0 sent or failed, 1 left to Python */
    int64_t packets;
    int64_t bytes;
    int64_t errors;
} sfu_dest;
"""

CDEF = STRUCTS + """
int sfu_send(sfu_conn *c, const char *pkt, int len, int b1, int seq,
             unsigned int ts, unsigned int ssrc, int twcc_off);
int sfu_fanout(const char *pkt, int len, int b1, uint32_t ssrc, int64_t ext,
               uint32_t ts, double now_ms, int twcc_off, sfu_dest **dests, int n);
int sfu_unprotect(sfu_rx *rx, const char *pkt, int len);
"""

SOURCE = r"""
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
""" + STRUCTS + r"""

typedef int (*sfu_protect_fn)(void *ctx, void *rtp_hdr, int *len_ptr);

#define SFU_MAX_IN 1500  /* as the Python path; 36 bytes left for the SRTP tag and MKI */
#define SFU_TWCC_MASK 8191

static double sfu_monotonic_ms(void)  /* Python's time.monotonic() * 1000 */
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6;
}

/* >= 0: bytes sent; -1: too long or too short; -2: protect failed; -3: send failed.
   When the connection does transport-cc and the packet has the element (at twcc_off, > 0),
   the next transport-wide sequence number is written there and, once sent, recorded with
   the clear size and the send time (as MediaTransport.send_rewritten and SendHistory). */
int sfu_send(sfu_conn *c, const char *pkt, int len, int b1, int seq,
             unsigned int ts, unsigned int ssrc, int twcc_off)
{
    unsigned char *b = c->buf;
    sfu_twcc *t = c->twcc;
    int out, twcc_seq = -1;
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
        twcc_seq = t->assigned = (t->assigned + 1) & 0xFFFF;
        b[twcc_off] = (unsigned char)(twcc_seq >> 8);
        b[twcc_off + 1] = (unsigned char)twcc_seq;
    }
    out = len;
    if (((sfu_protect_fn)c->protect)(c->srtp, b, &out) != 0)
        return -2;
    if ((c->connected ? send(c->fd, b, (size_t)out, 0)
                      : sendto(c->fd, b, (size_t)out, 0, (const struct sockaddr *)c->addr,
                               (socklen_t)c->addrlen)) < 0)
        return -3;
    if (twcc_seq >= 0) {
        int i = twcc_seq & SFU_TWCC_MASK;
        t->seqs[i] = twcc_seq;
        t->sizes[i] = len;
        t->times[i] = sfu_monotonic_ms();
        t->last_recorded = twcc_seq;
    }
    return out;
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
        if (sfu_send(d->conn, pkt, len, b1, (int)(out_ext & 0xFFFF), (unsigned int)out_ts,
                     d->out_ssrc, twcc_off) >= 0) {
            d->packets++;
            d->bytes += len;
        } else {
            d->errors++;
        }
    }
    return left;
}
"""


def build(dest: Path | None = None) -> Path:
    """Compile ``sfu._fastpath`` next to this file (or into ``dest``); returns its path."""
    from cffi import FFI

    ffi = FFI()
    ffi.cdef(CDEF)
    ffi.set_source("sfu._fastpath", SOURCE, extra_compile_args=["-O2"])
    target = dest or Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory() as tmp:
        built = Path(ffi.compile(tmpdir=tmp))
        out = target / built.name
        shutil.copyfile(built, out)
    return out


if __name__ == "__main__":
    path = build(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    print(f"built {path}")
