// Copies stdin to stdout until EOF.
#include <stdio.h>

int main(void) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) {
        if (fwrite(buf, 1, n, stdout) != n) {
            return 1;
        }
    }
    fflush(stdout);
    return ferror(stdin) ? 1 : 0;
}
