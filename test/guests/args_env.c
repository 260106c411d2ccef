// Prints every argument as "arg[i]=..." and a few environment variables as "env NAME=...".
#include <stdio.h>
#include <stdlib.h>

static const char *const NAMES[] = {"FOO", "BAR", "IMAGE_VAR"};

int main(int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        printf("arg[%d]=%s\n", i, argv[i]);
    }
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++) {
        const char *value = getenv(NAMES[i]);
        printf("env %s=%s\n", NAMES[i], value ? value : "<unset>");
    }
    return 0;
}
