// The pod's pause container, like Kubernetes' pause: sleeps until SIGINT or SIGTERM (then
// exits 0) and, as the init of its PID namespace, reaps whatever is reparented to it.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig) {
    (void)sig;
    _exit(0);
}

static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction q = {.sa_handler = quit};
    sigaction(SIGINT, &q, NULL);
    sigaction(SIGTERM, &q, NULL);
    struct sigaction r = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP | SA_RESTART};
    sigaction(SIGCHLD, &r, NULL);
    for (;;) {
        pause();
    }
}
