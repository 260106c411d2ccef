// Grows linear memory one 64 KiB page at a time, touching every 4 KiB of each new page, until
// memory.grow refuses; prints how far it got. Under a memory limit the runtime must refuse the
// growth before the kernel's OOM killer ends the container.
// Each argument names a file: the guest waits for it to exist, then grows again and prints
// another line (a test changes the limit in between).
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static size_t pages;

static void grow_until_refused(void) {
    for (;;) {
        size_t old = __builtin_wasm_memory_grow(0, 1);
        if (old == (size_t)-1) break;
        volatile char *page = (volatile char *)(old * 65536);
        for (int i = 0; i < 65536; i += 4096) page[i] = 1;
        pages++;
    }
    printf("memory.grow refused at %zu MiB\n", pages * 65536 >> 20);
    fflush(stdout);
}

int main(int argc, char **argv) {
    pages = __builtin_wasm_memory_size(0);
    if (argc < 2) {
        grow_until_refused();
        return 0;
    }
    struct timespec tick = {0, 20 * 1000 * 1000};
    for (int i = 1; i < argc; i++) {
        while (access(argv[i], F_OK) != 0) nanosleep(&tick, NULL);
        grow_until_refused();
    }
    return 0;
}
