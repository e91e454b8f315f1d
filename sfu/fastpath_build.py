"""Build the compiled send step of the forwarding path (``sfu._fastpath``, cffi, C).

    python -m sfu.fastpath_build

``scripts/setup.sh`` runs it (it needs a C compiler and the Python headers). Without the
module the server runs the same logic in Python (:mod:`sfu.fastpath`), slower.

What the C does, per forwarded packet and subscriber: copy the packet into the
connection's buffer, write the rewritten payload type/marker byte, sequence number,
timestamp and SSRC (and the transport-wide sequence number, when the subscriber does
transport-cc), SRTP-protect it with libsrtp (called through the function pointer
pylibsrtp exposes, so nothing links against libsrtp here), and ``sendto`` it on the ICE
socket. One call from Python instead of a buffer copy, a struct write, a libsrtp call, a
bytes slice and an event-loop ``sendto``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

CDEF = """
typedef struct {
    void *srtp;          /* srtp_t of the sending direction */
    void *protect;       /* srtp_protect */
    int fd;              /* the ICE socket */
    unsigned int addrlen;
    unsigned char addr[28];  /* struct sockaddr_in or sockaddr_in6 of the peer */
    unsigned char buf[1536];
} sfu_conn;

int sfu_send(sfu_conn *c, const char *pkt, int len, int b1, int seq,
             unsigned int ts, unsigned int ssrc, int twcc_off, int twcc_seq);
"""

SOURCE = r"""
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

typedef struct {
    void *srtp;
    void *protect;
    int fd;
    unsigned int addrlen;
    unsigned char addr[28];
    unsigned char buf[1536];
} sfu_conn;

typedef int (*sfu_protect_fn)(void *ctx, void *rtp_hdr, int *len_ptr);

#define SFU_MAX_IN (1536 - 64)  /* room for the SRTP auth tag and MKI */

/* >= 0: bytes sent; -1: too long or too short; -2: protect failed; -3: send failed */
int sfu_send(sfu_conn *c, const char *pkt, int len, int b1, int seq,
             unsigned int ts, unsigned int ssrc, int twcc_off, int twcc_seq)
{
    unsigned char *b = c->buf;
    int out;
    if (len < 12 || len > SFU_MAX_IN)
        return -1;
    memcpy(b, pkt, (size_t)len);
    b[1] = (unsigned char)b1;
    b[2] = (unsigned char)(seq >> 8); b[3] = (unsigned char)seq;
    b[4] = (unsigned char)(ts >> 24); b[5] = (unsigned char)(ts >> 16);
    b[6] = (unsigned char)(ts >> 8);  b[7] = (unsigned char)ts;
    b[8] = (unsigned char)(ssrc >> 24); b[9] = (unsigned char)(ssrc >> 16);
    b[10] = (unsigned char)(ssrc >> 8); b[11] = (unsigned char)ssrc;
    if (twcc_off > 0 && twcc_off + 2 <= len) {
        b[twcc_off] = (unsigned char)(twcc_seq >> 8);
        b[twcc_off + 1] = (unsigned char)twcc_seq;
    }
    out = len;
    if (((sfu_protect_fn)c->protect)(c->srtp, b, &out) != 0)
        return -2;
    if (sendto(c->fd, b, (size_t)out, 0, (const struct sockaddr *)c->addr,
               (socklen_t)c->addrlen) < 0)
        return -3;
    return out;
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
