// Writes a note to a file (argv[1], default /tmp/wasmbox-note.txt), reads it back and prints it.
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "/tmp/wasmbox-note.txt";
    const char *note = "written by the files guest";

    FILE *out = fopen(path, "w");
    if (!out) {
        perror("open for writing");
        return 1;
    }
    fputs(note, out);
    if (fclose(out) != 0) {
        perror("close");
        return 1;
    }

    char back[128] = {0};
    FILE *in = fopen(path, "r");
    if (!in) {
        perror("open for reading");
        return 1;
    }
    size_t n = fread(back, 1, sizeof back - 1, in);
    fclose(in);
    printf("read back: %.*s\n", (int)n, back);
    return strcmp(back, note) == 0 ? 0 : 2;
}
