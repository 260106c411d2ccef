// The tiny hello of the cold-start benchmark. The same source is built twice: for wasm32-wasi
// (run by wasmbox) and as a static native ELF (run by runc), so both print the same bytes.
#include <stdio.h>

int main(void) {
    puts("hello from the bench");
    return 0;
}
