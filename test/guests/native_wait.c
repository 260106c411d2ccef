// Static native ELF that waits for signals forever; the runc baseline uses it to exercise
// detached runs, task listing, containerd restarts and kills without the wasm shim.
#include <unistd.h>

int main(void) {
    for (;;) {
        pause();
    }
}
