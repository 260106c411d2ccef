// The idle "server" of the density benchmark: it does nothing but wait, like a server that has
// no work. WASI preview 1 cannot open a listening socket without a host-provided one, so
// waiting is a sleep (poll_oneoff on a clock in wasm, nanosleep natively). Built for
// wasm32-wasi (wasmbox) and as a static native ELF (runc) from this one source.
#include <unistd.h>

int main(void) {
    for (;;) {
        sleep(3600);
    }
}
