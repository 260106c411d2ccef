// Linked into every wasm32-wasip2 guest (guests.rs, Kind::ComponentP2) in place of wasi-libc's
// dlmalloc: that one needs the linker symbol `__heap_end`, which Debian 12's wasm-ld 14 does not
// define (wasm-ld 15+ does). Defining every allocator entry point here keeps dlmalloc.o out of
// the link. A bump allocator over sbrk (memory.grow, whole pages): free gives back only the
// latest block, enough for a guest that runs briefly or reads and frees one buffer at a time
// (a streaming HTTP handler keeps a constant memory that way).
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

// The free space [top, end): pages taken from sbrk, which grows memory by whole pages only.
static uintptr_t top, end;

// Each block is preceded by its size (for realloc and malloc_usable_size).
static void *bump(size_t size, size_t align) {
    if (align < 16)
        align = 16;
    uintptr_t start = (top + sizeof(size_t) + align - 1) & ~(uintptr_t)(align - 1);
    if (top == 0 || start > end || size > end - start) {
        // More pages: enough for the block, its header and its alignment.
        if (size > SIZE_MAX / 2) {
            errno = ENOMEM;
            return NULL;
        }
        size_t need = size + sizeof(size_t) + align;
        size_t grow = (need + PAGESIZE - 1) / PAGESIZE * PAGESIZE;
        void *more = sbrk((intptr_t)grow);
        if (more == (void *)-1) {
            errno = ENOMEM;
            return NULL;
        }
        // Someone else may have grown memory since: then start over at the new pages.
        if ((uintptr_t)more != end)
            top = (uintptr_t)more;
        end = (uintptr_t)more + grow;
        start = (top + sizeof(size_t) + align - 1) & ~(uintptr_t)(align - 1);
    }
    ((size_t *)start)[-1] = size;
    top = start + size;
    return (void *)start;
}

void *malloc(size_t n) { return bump(n, 16); }
void *__libc_malloc(size_t n) { return bump(n, 16); }
void free(void *p) {
    // The latest block: its space is the next block's (its header is where top was, or after).
    if (p && (uintptr_t)p + ((size_t *)p)[-1] == top)
        top = (uintptr_t)p - sizeof(size_t);
}
void __libc_free(void *p) { free(p); }

void *calloc(size_t n, size_t m) {
    if (m && n > SIZE_MAX / m) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = bump(n * m, 16);
    if (p)
        memset(p, 0, n * m);
    return p;
}
void *__libc_calloc(size_t n, size_t m) { return calloc(n, m); }

size_t malloc_usable_size(void *p) { return p ? ((size_t *)p)[-1] : 0; }

void *realloc(void *p, size_t n) {
    void *q = bump(n, 16);
    if (q && p) {
        size_t old = malloc_usable_size(p);
        memcpy(q, p, old < n ? old : n);
    }
    return q;
}

void *aligned_alloc(size_t align, size_t n) { return bump(n, align); }

int posix_memalign(void **out, size_t align, size_t n) {
    void *p = bump(n, align);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}
