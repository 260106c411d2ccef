// Probes the guest's filesystem. Each argument is one operation; one line is printed per
// operation, "<arg> ok <detail>" or "<arg> err <ERRNO>", and the exit status is 0.
//   read:PATH          first line of the file
//   list:PATH          the directory's entries, sorted, comma-separated
//   create:PATH        create, write, close and remove a file
//   symlink:TARGET:LINK  make a symlink
//   link:EXISTING:NEW  make a hard link
//   readloop:N:PATH    reads PATH N times: "ok first-lines=COUNT,..." of what it read and
//                      "err=COUNT" of the failures
//   cwd                getcwd()
//   env:NAME           the environment variable
//   chdir-pwd          chdir($PWD), as programs do to take the container's cwd
//   preopens           the names of the preopened directories, in descriptor order
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wasi/api.h>

static const char *errname(int e) {
    switch (e) {
    case ENOENT: return "ENOENT";
    case EROFS: return "EROFS";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOTCAPABLE: return "ENOTCAPABLE";
    case ELOOP: return "ELOOP";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EEXIST: return "EEXIST";
    case EXDEV: return "EXDEV";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    default: { static char buf[16]; snprintf(buf, sizeof buf, "E%d", e); return buf; }
    }
}

static int err(const char *arg) {
    printf("%s err %s\n", arg, errname(errno));
    return 0;
}

static int cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void op_read(const char *arg, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        err(arg);
        return;
    }
    char line[256] = {0};
    if (!fgets(line, sizeof line, f)) line[0] = 0;
    fclose(f);
    line[strcspn(line, "\n")] = 0;
    printf("%s ok %s\n", arg, line);
}

static void op_list(const char *arg, const char *path) {
    DIR *d = opendir(path);
    if (!d) {
        err(arg);
        return;
    }
    char *names[512];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 512) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp);
    printf("%s ok ", arg);
    for (int i = 0; i < n; i++) printf("%s%s", i ? "," : "", names[i]);
    printf("\n");
}

static void op_create(const char *arg, const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        err(arg);
        return;
    }
    if (write(fd, "x", 1) != 1) {
        err(arg);
        close(fd);
        return;
    }
    close(fd);
    if (unlink(path) != 0) {
        err(arg);
        return;
    }
    printf("%s ok\n", arg);
}

static void op_symlink(const char *arg, char *spec) {
    char *link = strchr(spec, ':');
    if (!link) {
        printf("%s err EINVAL\n", arg);
        return;
    }
    *link++ = 0;
    if (symlink(spec, link) != 0) {
        err(arg);
        return;
    }
    printf("%s ok\n", arg);
}

static void op_link(const char *arg, char *spec) {
    char *dst = strchr(spec, ':');
    if (!dst) {
        printf("%s err EINVAL\n", arg);
        return;
    }
    *dst++ = 0;
    if (link(spec, dst) != 0) {
        err(arg);
        return;
    }
    printf("%s ok\n", arg);
}

static void op_readloop(const char *arg, char *spec) {
    char *path = strchr(spec, ':');
    if (!path) {
        printf("%s err EINVAL\n", arg);
        return;
    }
    *path++ = 0;
    long n = atol(spec);
    long inside = 0, secret = 0, other = 0, failed = 0;
    for (long i = 0; i < n; i++) {
        FILE *f = fopen(path, "r");
        if (!f) {
            failed++;
            continue;
        }
        char line[64] = {0};
        if (!fgets(line, sizeof line, f)) line[0] = 0;
        fclose(f);
        if (!strcmp(line, "inside\n")) inside++;
        else if (!strcmp(line, "secret\n")) secret++;
        else other++;
    }
    printf("%s ok inside=%ld secret=%ld other=%ld err=%ld\n", arg, inside, secret, other, failed);
}

static void op_preopens(const char *arg) {
    printf("%s ok ", arg);
    int first = 1;
    for (__wasi_fd_t fd = 3; fd < 64; fd++) {
        __wasi_prestat_t ps;
        if (__wasi_fd_prestat_get(fd, &ps) != 0) break;
        char name[256] = {0};
        size_t len = ps.u.dir.pr_name_len < 255 ? ps.u.dir.pr_name_len : 255;
        if (__wasi_fd_prestat_dir_name(fd, (uint8_t *)name, len) != 0) break;
        printf("%s%s", first ? "" : ",", name);
        first = 0;
    }
    printf("\n");
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        char *copy = strdup(arg);
        char *colon = strchr(copy, ':');
        char *rest = colon ? colon + 1 : "";
        if (colon) *colon = 0;
        errno = 0;
        if (!strcmp(copy, "read")) op_read(arg, rest);
        else if (!strcmp(copy, "list")) op_list(arg, rest);
        else if (!strcmp(copy, "create")) op_create(arg, rest);
        else if (!strcmp(copy, "symlink")) op_symlink(arg, rest);
        else if (!strcmp(copy, "link")) op_link(arg, rest);
        else if (!strcmp(copy, "readloop")) op_readloop(arg, rest);
        else if (!strcmp(copy, "preopens")) op_preopens(arg);
        else if (!strcmp(copy, "env")) {
            const char *v = getenv(rest);
            if (v) printf("%s ok %s\n", arg, v);
            else printf("%s err ENOENT\n", arg);
        } else if (!strcmp(copy, "chdir-pwd")) {
            const char *pwd = getenv("PWD");
            if (pwd && chdir(pwd) == 0) printf("%s ok\n", arg);
            else err(arg);
        }
        else if (!strcmp(copy, "cwd")) {
            char buf[512];
            if (getcwd(buf, sizeof buf)) printf("%s ok %s\n", arg, buf);
            else err(arg);
        } else printf("%s err EINVAL\n", arg);
        free(copy);
    }
    fflush(stdout);
    return 0;
}
