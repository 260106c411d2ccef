// Does nothing but wait (a sleep: poll_oneoff on a clock), like an idle server: a container
// that stays running without using a core.
#include <unistd.h>

int main(void) {
    for (;;) {
        sleep(3600);
    }
}
