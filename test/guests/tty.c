// Says whether its standard streams are terminals, then answers lines of input until EOF or
// "exit": "size" prints the terminal's size (native builds only: WASI has no ioctl), anything
// else is echoed back as "got: LINE".
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#ifndef __wasi__
#include <sys/ioctl.h>
#endif

int main(void) {
    printf("isatty: %d %d %d\n", isatty(0), isatty(1), isatty(2));
    fflush(stdout);
    char line[256];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = 0;
        if (strcmp(line, "exit") == 0) {
            break;
        }
#ifndef __wasi__
        if (strcmp(line, "size") == 0) {
            struct winsize ws;
            if (ioctl(1, TIOCGWINSZ, &ws) == 0) {
                printf("size: %ux%u\n", ws.ws_col, ws.ws_row);
            } else {
                perror("TIOCGWINSZ");
            }
            fflush(stdout);
            continue;
        }
#endif
        printf("got: %s\n", line);
        fflush(stdout);
    }
    return 7;
}
