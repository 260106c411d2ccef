// Grows linear memory one 64 KiB page at a time, touching every 4 KiB of each new page, until
// memory.grow refuses; prints how far it got and exits 0. Under a memory limit the runtime
// must refuse the growth before the kernel's OOM killer ends the container.
#include <stdio.h>

int main(void) {
    size_t pages = __builtin_wasm_memory_size(0);
    for (;;) {
        size_t old = __builtin_wasm_memory_grow(0, 1);
        if (old == (size_t)-1) break;
        volatile char *page = (volatile char *)(old * 65536);
        for (int i = 0; i < 65536; i += 4096) page[i] = 1;
        pages++;
    }
    printf("memory.grow refused at %zu MiB\n", pages * 65536 >> 20);
    return 0;
}
