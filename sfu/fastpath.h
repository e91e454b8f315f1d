/* The compiled steps of the forwarding path (sfu._fastpath): types and entry points.

   Built by the package build (setup.py: cffi_modules=["sfu/fastpath_build.py:ffi"]); the
   part between the cffi markers is also what sfu/fastpath_build.py gives cffi's cdef, so
   Python sees exactly these structs and functions. sfu/fastpath.py wraps them; the same
   logic in Python is the reference they are tested against byte for byte. */

#ifndef SFU_FASTPATH_H
#define SFU_FASTPATH_H

#include <stdint.h>

/* cffi-cdef-begin */
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
    unsigned int addrlen;
    unsigned char addr[28];  /* struct sockaddr_in or sockaddr_in6 of the peer */
    sfu_twcc *twcc;      /* NULL: the peer did not negotiate transport-cc */
    int pending;         /* 1: buf holds a packet queued in the send batch */
    unsigned char buf[1536];
} sfu_conn;

typedef struct {         /* one RTP source's ingress state (sfu.sequence.SequenceState) */
    int64_t base_ext;
    int64_t max_ext;     /* -1: nothing received yet */
    int64_t received;
    int64_t duplicates;
    int64_t late;
    int64_t restarts;
    int64_t bad_seq;
    int64_t miss_from;   /* the extended numbers the last update found missing: */
    int64_t miss_to;     /* [miss_from, miss_to) */
    double jitter;
    double last_transit;
    int has_transit;
    int clock_rate;
    uint64_t window[8];  /* bit i (word i / 64, bit i % 64): max_ext - i was received */
} sfu_seq;

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

typedef struct {         /* a publisher transport's transport-cc arrivals (sfu.twcc.TwccRecorder) */
    int64_t next_ext;    /* the unreported window is [next_ext, max_ext] */
    int64_t max_ext;     /* -1: nothing received yet */
    int64_t size;        /* slots in arrivals (a power of two) */
    int64_t duplicates;
    int64_t late;
    int64_t forgotten;
    int reported;        /* 1: feedback was built at least once */
    double *arrivals;    /* arrival ms by extended number & (size - 1); NaN: not received */
} sfu_twcc_rx;

typedef struct {         /* a PublishedTrack's ingress settings and counters */
    int64_t packets_in;
    int64_t bytes_in;
    int64_t duplicates;
    int publisher_pt;    /* the payload type the publisher sends */
    int pt;              /* the canonical one forwarded */
    int video;           /* 1: VP8 (the only video codec the compiled step handles) */
    int twcc;            /* 1: the publisher's transport-cc numbers are recorded: */
    sfu_twcc_rx *twcc_rx;  /*   here (NULL: by Python) */
    int level;           /* 1: audio levels go to Python */
    int gate;            /* 1: audio by speech (sfu.speech_gate: gate_step), with: */
    int gate_open;       /*   1: forwarded now */
    int gate_threshold;  /*   a level byte under this is loud (-dBov) */
    double gate_hold_ms;       /*   open this long after the last loud packet */
    double gate_last_loud_ms;
    int64_t gate_suppressed;   /*   packets not forwarded */
    unsigned char id_map[256];  /* header extension id -> canonical id (0: blank it) */
} sfu_track;

typedef struct {         /* one subscription */
    sfu_fwd *fwd;
    sfu_conn *conn;      /* NULL: this subscriber takes the Python path */
    uint32_t out_ssrc;
    int status;          /* after sfu_fanout: 0 sent or failed, 1 left to Python */
    int64_t packets;
    int64_t bytes;
    int64_t errors;
} sfu_dest;

typedef struct {         /* a Layer's ingress counters and its fan-out plan */
    int64_t packets;
    int64_t bytes;
    int64_t frames;
    double last_packet_ms;
    int64_t plan_version;    /* 0: dests is the current plan; -1: made again by Python */
    sfu_dest **dests;
    int n;
    int python_subs;     /* 1: some subscribers of the layer take the Python path */
} sfu_layer;

#define SFU_CACHE_SIZE 1024  /* sfu.retransmit.DEFAULT_CAPACITY */

typedef struct {         /* one source's retransmission cache (sfu.retransmit) */
    int64_t exts[1024];  /* the extended sequence number in each slot (-1: empty) */
    int lens[1024];
    int caps[1024];      /* each slot's buffer grows to the largest packet it held */
    unsigned char *pkts[1024];
    int64_t hits;
    int64_t misses;
} sfu_cache;

typedef struct {         /* one SSRC the compiled ingress step handles */
    uint32_t ssrc;
    int index;           /* the Python side's index of this source */
    sfu_seq *seq;
    sfu_track *track;
    sfu_layer *layer;
    sfu_cache *cache;    /* where its packets go, as rewritten */
} sfu_src;

#define SFU_MAX_SOURCES 32

typedef struct {
    void *srtp;          /* srtp_t of the receiving direction */
    void *unprotect;     /* srtp_unprotect */
    int64_t version;     /* 0: srcs is current; -1: made again by Python (Receiver.stale) */
    int nsrc;
    sfu_src srcs[SFU_MAX_SOURCES];
    /* after sfu_ingress: */
    int len;             /* the clear packet's length (in buf) */
    double now_ms;       /* its arrival time */
    int src;             /* handled: the source's index */
    int64_t ext;         /*   its extended sequence number */
    uint32_t ssrc;
    uint32_t ts;
    int twcc_off;        /*   where the transport-cc element's value is (0: none) */
    int twcc_seq;        /*   the publisher's transport-wide number (flag SFU_IN_TWCC) */
    int level;           /*   the audio level byte (flag SFU_IN_LEVEL) */
    unsigned char buf[1536];
} sfu_rx;

int sfu_send(sfu_conn *c, const char *pkt, int len, int b1, int seq,
             unsigned int ts, unsigned int ssrc, int twcc_off);
int sfu_fanout(const char *pkt, int len, int b1, uint32_t ssrc, int64_t ext,
               uint32_t ts, double now_ms, int twcc_off, sfu_dest **dests, int n);
int sfu_batch_state(void);
void sfu_batch_disable(void);
int sfu_unprotect(sfu_rx *rx, const char *pkt, int len);
long sfu_rewrite(const char *pkt, int len, const char *id_map, int a_id, int b_id, int pt,
                 char *out);
int sfu_vp8_keyframe(const char *pkt, int len);
int64_t sfu_seq_update(sfu_seq *s, int seq, uint32_t ts, double now_ms);
void sfu_seq_init(sfu_seq *s, int clock_rate);
int sfu_ingress(sfu_rx *rx, const char *pkt, int len);
void sfu_twcc_rx_packet(sfu_twcc_rx *t, int seq, double arrival_ms);
sfu_cache *sfu_cache_new(void);
void sfu_cache_free(sfu_cache *c);
int sfu_cache_put(sfu_cache *c, int64_t ext, const char *pkt, int len);
int sfu_cache_get(sfu_cache *c, int64_t ext, char *out);
extern int64_t sfu_ingress_handled;  /* packets sfu_ingress handled, in this process */
/* cffi-cdef-end */

#endif
