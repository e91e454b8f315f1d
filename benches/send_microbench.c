/* The send path alone: one 1100-byte UDP datagram to each of N loopback sockets, either
   with one sendto per datagram or all N in one io_uring_enter (IORING_OP_SENDMSG, as the
   compiled fan-out in sfu/fastpath.c does), and the sender's CPU time per datagram.

     gcc -O2 -o /tmp/send_microbench benches/send_microbench.c
     /tmp/send_microbench 20 sendto 20000          # nobody waiting on the sockets
     /tmp/send_microbench 20 uring 20000 wake      # a receiver process blocked in epoll

   Without "wake" the sender drains the sockets itself between rounds (not timed): the cost
   of the send alone, as with subscribers across a network. With "wake" a second process
   waits in epoll_wait on all N sockets, as the bench's subscribers do, and every send also
   pays the receiver's wake-up, which on loopback runs in the sender's context. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_N 256

static int ring_fd;
static unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail;
static struct io_uring_sqe *sqes;

static void ring_setup(void)
{
    struct io_uring_params p;
    char *sq, *cq;
    memset(&p, 0, sizeof p);
    ring_fd = (int)syscall(__NR_io_uring_setup, MAX_N, &p);
    if (ring_fd < 0) {
        perror("io_uring_setup");
        exit(2);
    }
    sq = mmap(NULL, p.sq_off.array + p.sq_entries * sizeof(unsigned), PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_POPULATE, ring_fd, IORING_OFF_SQ_RING);
    cq = mmap(NULL, p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe),
              PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_fd, IORING_OFF_CQ_RING);
    sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                MAP_SHARED | MAP_POPULATE, ring_fd, IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    sq_tail = (unsigned *)(sq + p.sq_off.tail);
    sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    sq_array = (unsigned *)(sq + p.sq_off.array);
    cq_head = (unsigned *)(cq + p.cq_off.head);
    cq_tail = (unsigned *)(cq + p.cq_off.tail);
}

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void receive_forever(const int *fds, int n)
{
    struct epoll_event ev[MAX_N];
    char buf[2048];
    int ep = epoll_create1(0), i, k;
    for (i = 0; i < n; i++) {
        struct epoll_event e = {.events = EPOLLIN, .data.fd = fds[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e);
    }
    for (;;) {
        k = epoll_wait(ep, ev, MAX_N, -1);
        for (i = 0; i < k; i++)
            while (recv(ev[i].data.fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
                ;
    }
}

int main(int argc, char **argv)
{
    static struct sockaddr_in addr[MAX_N];
    static struct iovec iov[MAX_N];
    static struct msghdr msg[MAX_N];
    int fds[MAX_N], n, rounds, uring, wake, s, i, r;
    pid_t receiver = 0;
    char pkt[1100], buf[2048];
    double spent = 0;
    if (argc < 4) {
        fprintf(stderr, "usage: %s N sendto|uring ROUNDS [wake]\n", argv[0]);
        return 2;
    }
    n = atoi(argv[1]);
    uring = strcmp(argv[2], "uring") == 0;
    rounds = atoi(argv[3]);
    wake = argc > 4 && strcmp(argv[4], "wake") == 0;
    if (n < 1 || n > MAX_N || rounds < 1)
        return 2;
    if (uring)
        ring_setup();
    s = socket(AF_INET, SOCK_DGRAM, 0);
    for (i = 0; i < n; i++) {
        socklen_t len = sizeof addr[i];
        int big = 4 << 20;
        fds[i] = socket(AF_INET, SOCK_DGRAM, 0);
        setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
        addr[i].sin_family = AF_INET;
        addr[i].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(fds[i], (struct sockaddr *)&addr[i], sizeof addr[i]);
        getsockname(fds[i], (struct sockaddr *)&addr[i], &len);
        iov[i].iov_base = pkt;
        iov[i].iov_len = sizeof pkt;
        msg[i].msg_name = &addr[i];
        msg[i].msg_namelen = sizeof addr[i];
        msg[i].msg_iov = &iov[i];
        msg[i].msg_iovlen = 1;
    }
    memset(pkt, 0x5a, sizeof pkt);
    if (wake && (receiver = fork()) == 0)
        receive_forever(fds, n);
    for (r = 0; r < rounds; r++) {
        double t0 = cpu_s();
        if (!uring) {
            for (i = 0; i < n; i++)
                sendto(s, pkt, sizeof pkt, 0, (struct sockaddr *)&addr[i], sizeof addr[i]);
        } else {
            unsigned tail = *sq_tail, head;
            for (i = 0; i < n; i++) {
                unsigned idx = (tail + (unsigned)i) & *sq_mask;
                struct io_uring_sqe *sqe = &sqes[idx];
                memset(sqe, 0, sizeof *sqe);
                sqe->opcode = IORING_OP_SENDMSG;
                sqe->fd = s;
                sqe->addr = (uint64_t)(uintptr_t)&msg[i];
                sqe->len = 1;
                sqe->msg_flags = MSG_DONTWAIT;
                sq_array[idx] = idx;
            }
            __atomic_store_n(sq_tail, tail + (unsigned)n, __ATOMIC_RELEASE);
            if (syscall(__NR_io_uring_enter, ring_fd, n, n, IORING_ENTER_GETEVENTS, NULL, 0) != n) {
                perror("io_uring_enter");
                return 2;
            }
            head = __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE);
            __atomic_store_n(cq_head, head, __ATOMIC_RELEASE);
        }
        spent += cpu_s() - t0;
        if (wake)
            usleep(500);  /* the receiver drains and goes back to sleep */
        else
            for (i = 0; i < n; i++)
                while (recv(fds[i], buf, sizeof buf, MSG_DONTWAIT) > 0)
                    ;
    }
    if (receiver > 0)
        kill(receiver, SIGKILL);
    printf("%d datagrams per round, %s%s: %.3f us of CPU per datagram\n", n,
           uring ? "io_uring" : "sendto", wake ? ", receiver waiting" : "",
           spent / rounds / n * 1e6);
    return 0;
}
