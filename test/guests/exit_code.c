// Exits (WASI proc_exit via exit()) with the code given in argv[1]; 0 without an argument.
#include <stdlib.h>

int main(int argc, char **argv) {
    int code = argc > 1 ? atoi(argv[1]) : 0;
    exit(code);
}
