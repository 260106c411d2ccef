// Built with gcc -static: a native ELF that needs nothing from the image but itself.
#include <stdio.h>

int main(void) {
    puts("hello from native");
    return 0;
}
