// A small HTTP/1.1 server (keep-alive, pipelining) with poll(): `GET /file` answers the
// contents of $FILE, any other path `hello <path>\n`; `Connection: close` ends the
// connection after the answer with shutdown().
//
// Built for wasm32-wasi it serves on the listeners the runtime preopened (LISTEN_FDS, from
// descriptor 3); built natively (the benchmark's runc baseline) it binds 0.0.0.0:argv[1].
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#ifndef __wasi__
#include <netinet/in.h>
#endif

#define MAX_FDS 512
#define BUF 8192

struct conn {
    int used;
    char buf[BUF];
    size_t len;
};

static struct pollfd fds[MAX_FDS];
static struct conn conns[MAX_FDS];
static int nfds, nlisteners;

// Sends all of `data`; the socket is non-blocking, so wait for room when it is full.
static int send_all(int fd, const char *data, size_t len, int use_write) {
    while (len > 0) {
        ssize_t n = use_write ? write(fd, data, len) : send(fd, data, len, 0);
        if (n < 0 && errno == EAGAIN) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            poll(&p, 1, -1);
            continue;
        }
        if (n <= 0) return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static int answer(int fd, const char *path, int close_after) {
    static char body[4096], head[256];
    size_t blen;
    int from_file = strcmp(path, "/file") == 0;
    if (from_file) {
        const char *name = getenv("FILE");
        FILE *f = name ? fopen(name, "r") : NULL;
        if (!f) {
            blen = (size_t)snprintf(body, sizeof body, "cannot open %s: %s\n", name ? name : "$FILE", strerror(errno));
        } else {
            blen = fread(body, 1, sizeof body, f);
            fclose(f);
        }
    } else {
        blen = (size_t)snprintf(body, sizeof body, "hello %s\n", path);
    }
    int hlen = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nContent-Type: text/plain\r\n%s\r\n",
                        blen, close_after ? "Connection: close\r\n" : "");
    static char out[sizeof head + sizeof body];
    memcpy(out, head, (size_t)hlen);
    memcpy(out + hlen, body, blen);
    // fd_write for files' answers, sock_send for the rest: both must work on a socket.
    return send_all(fd, out, (size_t)hlen + blen, from_file);
}

static void drop_conn(int i) {
    close(fds[i].fd);
    conns[i].used = 0;
    fds[i] = fds[nfds - 1];
    conns[i] = conns[nfds - 1];
    nfds--;
}

// Answers every complete request in the buffer; -1 when the connection is to end.
static int serve(int i) {
    struct conn *c = &conns[i];
    for (;;) {
        c->buf[c->len] = 0;
        char *end = strstr(c->buf, "\r\n\r\n");
        if (!end) return c->len >= BUF - 1 ? -1 : 0;
        char path[1024] = "/";
        sscanf(c->buf, "GET %1023s", path);
        *end = 0;
        int close_after = strstr(c->buf, "Connection: close") != NULL;
        if (answer(fds[i].fd, path, close_after) < 0) return -1;
        if (close_after) {
            shutdown(fds[i].fd, SHUT_WR);
            return -1;
        }
        size_t used = (size_t)(end + 4 - c->buf);
        memmove(c->buf, c->buf + used, c->len - used);
        c->len -= used;
    }
}

int main(int argc, char **argv) {
    const char *count = getenv("LISTEN_FDS");
    const char *names = getenv("LISTEN_FDNAMES");
#ifdef __wasi__
    (void)argc;
    (void)argv;
    nlisteners = count ? atoi(count) : 0;
    for (int i = 0; i < nlisteners; i++) fds[nfds++] = (struct pollfd){.fd = 3 + i, .events = POLLIN};
#else
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(argc > 1 ? atoi(argv[1]) : 8080)};
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 1024) < 0) {
        perror("bind");
        return 1;
    }
    fds[nfds++] = (struct pollfd){.fd = s, .events = POLLIN};
    nlisteners = 1;
#endif
    if (nlisteners == 0) {
        fprintf(stderr, "no listeners (LISTEN_FDS is not set)\n");
        return 1;
    }
    // poll() before serving: a listener with nothing pending next to stdout (the runtime's own
    // descriptor, always writable), then the listener alone with a 20 ms timeout.
    struct pollfd mixed[2] = {{.fd = fds[0].fd, .events = POLLIN}, {.fd = 1, .events = POLLOUT}};
    int ready = poll(mixed, 2, 1000);
    int timed_out = poll(mixed, 1, 20);
    printf("startup polls: %d ready (listener %s, stdout %s), then %d\n", ready,
           mixed[0].revents ? "ready" : "idle", mixed[1].revents & POLLOUT ? "writable" : "not writable", timed_out);
    printf("serving LISTEN_FDS=%s LISTEN_FDNAMES=%s\n", count ? count : "-", names ? names : "-");
    fflush(stdout);
    for (;;) {
        // A timeout, as servers use for housekeeping: sockets and a clock in one poll.
        if (poll(fds, (nfds_t)nfds, 1000) < 0) {
            if (errno == EINTR) continue;
            perror("poll");
            return 1;
        }
        for (int i = nfds - 1; i >= 0; i--) {
            if (!fds[i].revents) continue;
            if (i < nlisteners) {
                struct sockaddr_storage peer;
                socklen_t plen = sizeof peer;
                int fd = accept(fds[i].fd, (struct sockaddr *)&peer, &plen);
                if (fd < 0) {
                    perror("accept");
                    continue;
                }
                if (nfds == MAX_FDS) {
                    close(fd);
                    continue;
                }
                fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
                fds[nfds] = (struct pollfd){.fd = fd, .events = POLLIN};
                conns[nfds].used = 1;
                conns[nfds].len = 0;
                nfds++;
                continue;
            }
            struct conn *c = &conns[i];
            // read() on odd descriptors, recv() on even ones: both must work on a socket.
            ssize_t n = fds[i].fd % 2 ? read(fds[i].fd, c->buf + c->len, BUF - 1 - c->len)
                                      : recv(fds[i].fd, c->buf + c->len, BUF - 1 - c->len, 0);
            if (n < 0 && errno == EAGAIN) continue;
            if (n <= 0) {
                drop_conn(i);
                continue;
            }
            c->len += (size_t)n;
            if (serve(i) < 0) drop_conn(i);
        }
    }
}
