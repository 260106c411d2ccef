// Built for wasm32-wasi, then wrapped into a WASI preview2 component with the preview1 adapter.
#include <stdio.h>

int main(void) {
    puts("hello from component");
    return 0;
}
