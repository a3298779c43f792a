/*
 * noop_floor.c: the least an FTP server can do per NOOP, to measure what a
 * control round trip costs below any server's own work (docs/benchmarks.md,
 * "Twelfth pass").
 *
 * One client at a time on 127.0.0.1:PORT: a 220 greeting, then 331 to USER,
 * 230 to PASS, 221 to QUIT (and close), "200 NOOP ok." to NOOP and 200 to
 * anything else. Each reply is one send(2); each wait is the WAIT given:
 *
 *   poll       poll(2) on the socket, as pure-ftpd waits (timeout 1 h)
 *   epoll      epoll_wait(2), edge-triggered, no timeout
 *   epolltmo   the same with a 150 ms timeout (a timer armed per wait, as
 *              a tokio runtime with timers waits)
 *   epollnest  the socket in an epoll that is itself in the waited epoll
 *
 * Built and measured (server on CPU 0, generator on CPU 1, CPU per request
 * from /proc over the server process):
 *
 *   gcc -O2 -o /tmp/noop_floor loadtest/noop_floor.c
 *   taskset -c 0 /tmp/noop_floor 2195 epoll & SP=$!
 *   taskset -c 1 ringftp loadtest --target 127.0.0.1:2195 --scenario single-ops \
 *       --ops noop --requests 30000 --user a --password b --server-pid $SP
 *   kill $SP
 *
 * Not a server: no paths, no data connections, no checks. Loopback only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static void reply(int fd, const char *s) {
    send(fd, s, strlen(s), MSG_DONTWAIT | MSG_NOSIGNAL);
}

static int is(const char *mode, const char *name) { return strcmp(mode, name) == 0; }

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s PORT poll|epoll|epolltmo|epollnest\n", argv[0]);
        return 2;
    }
    const char *mode = argv[2];
    if (!is(mode, "poll") && !is(mode, "epoll") && !is(mode, "epolltmo") &&
        !is(mode, "epollnest")) {
        fprintf(stderr, "unknown wait %s\n", mode);
        return 2;
    }
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 16)) {
        perror("listen");
        return 1;
    }
    int outer = epoll_create1(0), inner = epoll_create1(0);
    int timeout = is(mode, "epoll") ? -1 : 150;
    for (;;) {
        int c = accept4(l, NULL, NULL, SOCK_NONBLOCK);
        if (c < 0)
            continue;
        reply(c, "220 noop_floor\r\n");
        struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = c};
        struct epoll_event nest = {.events = EPOLLIN | EPOLLET, .data.fd = inner};
        if (is(mode, "epollnest")) {
            epoll_ctl(inner, EPOLL_CTL_ADD, c, &ev);
            epoll_ctl(outer, EPOLL_CTL_ADD, inner, &nest);
        } else if (!is(mode, "poll")) {
            epoll_ctl(outer, EPOLL_CTL_ADD, c, &ev);
        }
        char buf[8192];
        for (;;) {
            ssize_t n = recv(c, buf, sizeof buf - 1, MSG_DONTWAIT);
            if (n < 0) {
                if (is(mode, "poll")) {
                    struct pollfd p = {.fd = c, .events = POLLIN};
                    poll(&p, 1, 3600 * 1000);
                } else {
                    struct epoll_event out[64];
                    epoll_wait(outer, out, 64, timeout);
                }
                continue;
            }
            if (n == 0)
                break;
            buf[n] = 0;
            if (!strncmp(buf, "USER", 4))
                reply(c, "331 Password.\r\n");
            else if (!strncmp(buf, "PASS", 4))
                reply(c, "230 Logged in.\r\n");
            else if (!strncmp(buf, "QUIT", 4)) {
                reply(c, "221 Bye.\r\n");
                break;
            } else if (!strncmp(buf, "NOOP", 4))
                reply(c, "200 NOOP ok.\r\n");
            else
                reply(c, "200 Ok.\r\n");
        }
        if (is(mode, "epollnest")) {
            epoll_ctl(inner, EPOLL_CTL_DEL, c, NULL);
            epoll_ctl(outer, EPOLL_CTL_DEL, inner, NULL);
        } else if (!is(mode, "poll")) {
            epoll_ctl(outer, EPOLL_CTL_DEL, c, NULL);
        }
        close(c);
    }
}
