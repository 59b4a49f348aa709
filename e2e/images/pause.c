/*
 * pause: the process that holds a pod's namespaces open (Monaco's local e2e cluster).
 *
 * Behaves like Kubernetes' build/pause/linux/pause.c: sleeps forever, reaps any child that is
 * re-parented to it (it is PID 1 of the pod's PID namespace when the namespace is shared), and exits
 * with status 0 on SIGINT or SIGTERM. `-v` prints the version. Built with `gcc -static` so the image
 * holds nothing but this binary.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef VERSION
#define VERSION "monaco-3.9"
#endif

static void on_shutdown(int signo) {
	/* async-signal-safe: no stdio here */
	(void)signo;
	_exit(0);
}

static void on_child(int signo) {
	int saved = errno;
	(void)signo;
	while (waitpid(-1, NULL, WNOHANG) > 0) {
	}
	errno = saved;
}

int main(int argc, char **argv) {
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-v") == 0) {
			printf("pause.c %s\n", VERSION);
			return 0;
		}
	}
	if (getpid() != 1) {
		/* Not an error: pause may run as a plain process when the PID namespace is not shared. */
		fprintf(stderr, "pause: warning: not running as PID 1\n");
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_shutdown;
	if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0) {
		perror("pause: sigaction");
		return 1;
	}
	sa.sa_handler = on_child;
	sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
	if (sigaction(SIGCHLD, &sa, NULL) < 0) {
		perror("pause: sigaction");
		return 2;
	}

	for (;;) {
		pause();
	}
	fprintf(stderr, "pause: error: infinite loop terminated\n");
	return 42;
}
