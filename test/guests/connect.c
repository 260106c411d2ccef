// connect IP:PORT: one outbound TCP connection over wasi:sockets (wasi-libc's wasm32-wasip2
// socket layer, built as a component). Prints "connected" and exits 0, or
// "connect failed: <reason>" and exits 1; exit 2 for bad arguments.
// connect bind PORT: binds 0.0.0.0:PORT and listens. Prints "listening" and exits 0, or
// "bind failed: <reason>" and exits 1.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int bind_and_listen(const char *port) {
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)atoi(port));
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        printf("bind failed: socket: %s (errno %d)\n", strerror(errno), errno);
        return 1;
    }
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 1) != 0) {
        printf("bind failed: %s (errno %d)\n", strerror(errno), errno);
        return 1;
    }
    printf("listening\n");
    close(fd);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "bind") == 0) {
        return bind_and_listen(argv[2]);
    }
    if (argc != 2) {
        fprintf(stderr, "usage: connect IPv4:PORT\n");
        return 2;
    }
    char host[64];
    const char *colon = strrchr(argv[1], ':');
    size_t len = colon ? (size_t)(colon - argv[1]) : 0;
    if (!colon || len == 0 || len >= sizeof host) {
        fprintf(stderr, "connect: %s is not IPv4:PORT\n", argv[1]);
        return 2;
    }
    memcpy(host, argv[1], len);
    host[len] = 0;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "connect: %s is not an IPv4 address\n", host);
        return 2;
    }

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        printf("connect failed: socket: %s (errno %d)\n", strerror(errno), errno);
        return 1;
    }
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        printf("connect failed: %s (errno %d)\n", strerror(errno), errno);
        return 1;
    }
    printf("connected\n");
    close(fd);
    return 0;
}
