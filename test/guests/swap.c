// The other half of a race: sets up /scratch/real/f ("inside"), symlinks /scratch/abs -> /etc
// and /scratch/rel -> ../etc (where f says "secret"), then swaps them in and out of /scratch/x
// as fast as it can, forever: a path walked through /scratch/x meets a directory, nothing, or
// a symlink pointing out, at any step. Exits 1 if the setup fails.
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

int main(void) {
    mkdir("/etc", 0755);
    mkdir("/scratch/real", 0755);
    if (write_file("/etc/f", "secret\n") || write_file("/scratch/real/f", "inside\n") ||
        symlink("/etc", "/scratch/abs") || symlink("../etc", "/scratch/rel")) {
        perror("swap: setup");
        return 1;
    }
    printf("swapping\n");
    fflush(stdout);
    const char *names[] = {"/scratch/real", "/scratch/abs", "/scratch/rel"};
    for (unsigned long i = 0;; i++) {
        const char *n = names[i % 3];
        rename(n, "/scratch/x");
        rename("/scratch/x", n);
    }
}
