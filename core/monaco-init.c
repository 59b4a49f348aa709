/*
 * monaco-init: the runner, PID 1 of every sandbox, on both back ends.
 *
 *   monaco-init compile   copy the source into $MONACO_BUILD_DIR and run the language's compile command
 *   monaco-init run       copy the source into $MONACO_WORK_DIR and run the program with its stdin
 *   monaco-init PHASE job    (warm pool) first read one job from stdin into $MONACO_SRC_DIR, then the phase;
 *                            after `compile`, $MONACO_BUILD_DIR/.monaco-done tells the run container
 *   monaco-init run after-compile   (warm pool) first wait for $MONACO_BUILD_DIR/.monaco-done, then run
 *
 * A job is `MONACO-JOB v1 <source bytes> <stdin bytes>\n`, then the source, then the stdin. It arrives
 * through the Kubernetes API (pods/attach), never the network; the runner acknowledges a complete job
 * with one `#MONACO-JOB v1 ACCEPTED` line before anything of the program runs, so an operator that lost
 * track of a delivery can tell from the log whether the program may have run. A short or malformed job
 * runs nothing.
 *
 * Everything that judges a run lives here, where the program cannot reach it, although both run as
 * the same uid (a Kubernetes pod cannot switch users):
 *   - it is not dumpable (prctl), so the program cannot ptrace it, read or write /proc/1/mem, or open
 *     /proc/1/fd; and it is PID 1 of its PID namespace with no signal handler installed, so the
 *     kernel drops every signal the program sends it, SIGKILL and SIGSTOP included;
 *   - a seccomp filter it installs on itself (inherited by the program) refuses the calls that let a
 *     process retune another of its uid: prlimit, nice, scheduling, affinity, I/O priority of PID 1;
 *   - the wall-clock timer is its own poll() deadline: no timer process to stop, kill or patch;
 *   - the program's stdout and stderr are pipes that it reads itself, counting every byte: no
 *     capture file to delete, truncate or replace;
 *   - time, CPU time, memory and OOM kills are measured by it and by the kernel (rusage, the memory
 *     cgroup), never read from what the program prints or from an exit status it can choose.
 * When the program ends, hits a limit or is overdue, kill(-1, SIGKILL) ends everything else in the
 * namespace, the scratch dirs are emptied (tmpfs pages are charged to the memory cgroup) and one
 * result envelope is printed on stdout, framed by markers with a random nonce.
 *
 * Inputs (environment):
 *   MONACO_SRC_DIR, MONACO_SOURCE_FILE   read-only dir with the source file and, optionally, `stdin`
 *   MONACO_BUILD_DIR, MONACO_WORK_DIR    compile artifacts; the program's scratch working dir
 *   MONACO_COMMAND                       the sh command of this phase
 *   MONACO_TIMEOUT_MS                    wall-clock limit (at least 1)
 *   MONACO_OUTPUT_LIMIT                  bytes kept per stream; writing more ends the program
 *   MONACO_AS_KB, MONACO_NPROC, MONACO_NOFILE, MONACO_FSIZE_KB   rlimits (0: not set)
 *   MONACO_CGROUP_MEMORY                 1: report this container's memory cgroup (peak, OOM kills)
 *   MONACO_NEEDS_COMPILE                 1: `run` must find a successful compile in the build dir
 *   MONACO_SCRATCH_DIRS                  colon-separated dirs to empty when the phase ends
 *   MONACO_ARGC, MONACO_ARG_<i>          positional parameters of the command (`sh -c COMMAND sh ARG...`):
 *                                        the program's arguments, or the compiler's options; never parsed
 *   MONACO_FILES                         `/`-separated names of extra source files in the source dir,
 *                                        copied beside the source
 *   MONACO_MERGE_STDERR                  1 (run): the program's stderr is its stdout's pipe, in order
 *   MONACO_CASES                         N > 0 (run): run the program N times, with stdin `stdin-<i>`,
 *                                        each with the same limits in a fresh working dir; one envelope
 *                                        (with `case=<i>`) per run, all with the same nonce
 * Exit status: 0 whenever an envelope was printed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define VERSION "v2"
#define DRAIN_MS 2000 /* after the kill: how long to wait for pipes to close and children to be reaped */

extern char **environ;

struct capture {
	int fd;          /* read end, -1 once closed */
	char *buf;       /* the first `limit` bytes */
	uint64_t total;  /* every byte the program wrote */
};

static const char *phase;
static char nonce[37];
static char error[512];
static long long out_limit = 65536;
static long long timeout_ms = 10000;
static long long cpu_limit_ms;
static int status = -1; /* wait status of the program's main process; -1 if it never ran */
static long long wall_ns, cpu_ms;
static int timed_out, output_exceeded;
static long long memory_kb = -1, oom_kills = -1;
static struct capture out = {-1, NULL, 0}, err = {-1, NULL, 0};
static char outbuf[1 << 16];
static char done_marker[4096]; /* warm pool compile: created however the phase ends */
static int case_index = -1;     /* the test case being run, -1 without test cases */

static void touch(const char *path) {
	int m = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (m >= 0)
		close(m);
}

static void mark_done(void) {
	if (*done_marker)
		touch(done_marker);
}

static long long env_int(const char *name, long long fallback) {
	const char *v = getenv(name);
	if (!v || !*v)
		return fallback;
	char *end;
	long long n = strtoll(v, &end, 10);
	return *end ? fallback : n;
}

static long long now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void b64(const char *data, size_t n) {
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = (const unsigned char *)data;
	char q[4];
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = p[i] << 16 | (i + 1 < n ? p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
		q[0] = tab[v >> 18 & 63];
		q[1] = tab[v >> 12 & 63];
		q[2] = i + 1 < n ? tab[v >> 6 & 63] : '=';
		q[3] = i + 2 < n ? tab[v & 63] : '=';
		fwrite(q, 1, 4, stdout);
	}
}

static void opt(const char *key, long long v) {
	if (v < 0)
		printf("%s=\n", key);
	else
		printf("%s=%lld\n", key, v);
}

static void emit(void) {
	int code = -1, sig = -1;
	if (status != -1) {
		if (WIFEXITED(status))
			code = WEXITSTATUS(status);
		else if (WIFSIGNALED(status))
			sig = WTERMSIG(status), code = 128 + sig;
	}
	for (char *c = error; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	printf("\n#MONACO-ENVELOPE " VERSION " BEGIN %s\n", nonce);
	printf("phase=%s\n", phase);
	if (case_index >= 0)
		printf("case=%d\n", case_index);
	opt("exit", code);
	opt("signal", sig);
	printf("wall_ns=%lld\ncpu_ms=%lld\ncpu_limit_ms=%lld\ntimed_out=%d\ntimeout_ms=%lld\n", wall_ns, cpu_ms,
	       cpu_limit_ms, timed_out, timeout_ms);
	printf("output_limit=%lld\noutput_exceeded=%d\n", out_limit, output_exceeded);
	opt("memory_kb", memory_kb);
	opt("oom_kills", oom_kills);
	printf("stdout_bytes=%llu\nstderr_bytes=%llu\nerror=%s\n", (unsigned long long)out.total,
	       (unsigned long long)err.total, error);
	printf("stdout=");
	b64(out.buf, out.total < (uint64_t)out_limit ? out.total : (uint64_t)out_limit);
	printf("\nstderr=");
	b64(err.buf, err.total < (uint64_t)out_limit ? err.total : (uint64_t)out_limit);
	printf("\n#MONACO-ENVELOPE " VERSION " END %s\n", nonce);
	fflush(stdout);
}

static void fail(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(error, sizeof error, fmt, ap);
	va_end(ap);
	mark_done();
	emit();
	exit(0);
}

static void make_nonce(void) {
	unsigned char r[16];
	size_t got = 0;
	while (got < sizeof r) {
		ssize_t n = getrandom(r + got, sizeof r - got, 0);
		if (n < 0 && errno != EINTR) {
			snprintf(nonce, sizeof nonce, "00000000-0000-0000-0000-000000000000");
			fail("no randomness for the envelope's nonce: %s", strerror(errno));
		}
		if (n > 0)
			got += (size_t)n;
	}
	snprintf(nonce, sizeof nonce, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1],
		 r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
}

static const char *need(const char *name) {
	const char *v = getenv(name);
	if (!v || !*v)
		fail("runner misconfigured: %s is not set", name);
	return v;
}

static void copy_file(const char *from, const char *dir, const char *name) {
	char to[4096];
	snprintf(to, sizeof to, "%s/%s", dir, name);
	int in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		fail("source file %s is missing: %s", from, strerror(errno));
	int o = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (o < 0)
		fail("cannot copy the source into %s: %s", dir, strerror(errno));
	char buf[65536];
	ssize_t n;
	while ((n = read(in, buf, sizeof buf)) > 0)
		if (write(o, buf, (size_t)n) != n)
			fail("cannot copy the source into %s: %s", dir, strerror(errno));
	close(in);
	close(o);
}

static void mkdirs(const char *path) {
	char p[4096];
	snprintf(p, sizeof p, "%s", path);
	for (char *s = p + 1; *s; s++)
		if (*s == '/') {
			*s = 0;
			mkdir(p, 0755);
			*s = '/';
		}
	if (mkdir(p, 0755) != 0 && errno != EEXIST)
		fail("cannot create %s: %s", path, strerror(errno));
}

/* The first number after `key` in a cgroup file such as memory.events ("oom_kill 3"), or -1. */
static long long cgroup_value(const char *file, const char *key) {
	FILE *f = fopen(file, "re");
	if (!f)
		return -1;
	char line[256];
	long long v = -1;
	size_t k = key ? strlen(key) : 0;
	while (fgets(line, sizeof line, f)) {
		if (!key) {
			v = strtoll(line, NULL, 10);
			break;
		}
		if (strncmp(line, key, k) == 0 && line[k] == ' ') {
			v = strtoll(line + k + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

static long long oom_kill_count(void) {
	long long v = cgroup_value("/sys/fs/cgroup/memory.events", "oom_kill");
	return v >= 0 ? v : cgroup_value("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill");
}

static long long memory_peak_kb(void) {
	long long v = cgroup_value("/sys/fs/cgroup/memory.peak", NULL);
	if (v < 0)
		v = cgroup_value("/sys/fs/cgroup/memory/memory.max_usage_in_bytes", NULL);
	return v < 0 ? -1 : v / 1024;
}

/* Kill everything the program started. As PID 1, kill(-1) reaches every other process of the
 * namespace; elsewhere (an unisolated development run) only the program's process group. */
static void kill_all(pid_t child) {
	if (getpid() == 1)
		kill(-1, SIGKILL);
	else if (child > 0)
		kill(-child, SIGKILL);
}

/* Empty a scratch dir completely, whatever the program left in it (a test case's leftovers must not
 * break the next case: a 100-level tree named like its source made the copy fail), without following
 * links or crossing into other mounts (the run's bound src/ and build/ dirs live under /tmp). No
 * recursion and one open dir at a time: go down into a dir that is not empty, back up through ".."
 * once it is, and scan the parent again (what was removed is gone from it, so each entry is seen
 * about twice). A dir still not removable after it was emptied (it holds a mount point) is left. */
#define STUCK_MAX 64
static void wipe(int top, dev_t dev) {
	ino_t stuck[STUCK_MAX], came_from = 0;
	int n_stuck = 0, fd = top;
	long depth = 0;
	for (;;) {
		int again = dup(fd);
		DIR *d = again >= 0 ? fdopendir(again) : NULL;
		if (!d) {
			if (again >= 0)
				close(again);
			break;
		}
		int down = -1;
		struct dirent *e;
		while (down < 0 && (e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			struct stat st;
			if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || st.st_dev != dev)
				continue;
			if (!S_ISDIR(st.st_mode)) {
				unlinkat(fd, e->d_name, 0);
				continue;
			}
			int skip = 0;
			for (int i = 0; i < n_stuck; i++)
				skip |= stuck[i] == st.st_ino;
			if (skip || unlinkat(fd, e->d_name, AT_REMOVEDIR) == 0)
				continue;
			if (st.st_ino != came_from) {
				fchmodat(fd, e->d_name, 0700, 0);
				down = openat(fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (down >= 0)
					continue;
			}
			if (n_stuck == STUCK_MAX) /* cannot happen with one tmpfs per run: give up, never loop */
				break;
			stuck[n_stuck++] = st.st_ino;
		}
		closedir(d);
		if (down >= 0) {
			if (fd != top)
				close(fd);
			fd = down;
			depth++;
			continue;
		}
		if (depth == 0 || n_stuck == STUCK_MAX)
			break;
		struct stat here;
		int up = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		came_from = fstat(fd, &here) == 0 ? here.st_ino : 0;
		close(fd);
		if (up < 0)
			return;
		fd = up;
		depth--;
	}
	if (fd != top)
		close(fd);
}

static void wipe_scratch(void) {
	const char *dirs = getenv("MONACO_SCRATCH_DIRS");
	if (!dirs)
		return;
	char list[4096];
	snprintf(list, sizeof list, "%s", dirs);
	for (char *save, *p = strtok_r(list, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
		int fd = open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		struct stat st;
		if (fd < 0)
			continue;
		if (fstat(fd, &st) != 0) {
			close(fd);
			continue;
		}
		wipe(fd, st.st_dev);
		close(fd);
	}
}

/*
 * The program runs as the runner's uid (a pod cannot switch users), and the kernel lets a process
 * change the resource limits, nice value, scheduling policy, CPU affinity and I/O priority of any
 * other process of its uid, dumpable or not: prlimit(1, RLIMIT_NOFILE, 0) made the runner's own
 * poll() fail, which read as Monaco's fault. This filter, installed on the runner and so inherited
 * by everything the program starts, refuses those calls when they name PID 1 (the runner: it is
 * single-threaded, so PID 1 is its only thread), or a process group or a user, which would include
 * it. A process may still change itself (pid 0 or its own pid). Other architectures' entry points
 * (i386's int 0x80, x32) would bypass the syscall numbers below, so they are shut: no judged program
 * is built for them. Written out here because musl's headers carry no <linux/filter.h>.
 */
struct bpf_insn {
	uint16_t code;
	uint8_t jt, jf;
	uint32_t k;
};
struct bpf_prog {
	unsigned short len;
	struct bpf_insn *filter;
};
#if defined(__x86_64__)
#define NATIVE_ARCH 0xc000003eu /* AUDIT_ARCH_X86_64 */
#elif defined(__aarch64__)
#define NATIVE_ARCH 0xc00000b7u /* AUDIT_ARCH_AARCH64 */
#else
#error "monaco-init's seccomp filter supports x86_64 and aarch64; add this architecture's AUDIT_ARCH"
#endif
#define LD_ABS(off) {0x20, 0, 0, (off)}                    /* BPF_LD | BPF_W | BPF_ABS */
#define JEQ(k, t, f) {0x15, (t), (f), (uint32_t)(k)}        /* BPF_JMP | BPF_JEQ | BPF_K */
#define JGE(k, t, f) {0x35, (t), (f), (uint32_t)(k)}        /* BPF_JMP | BPF_JGE | BPF_K */
#define RET(k) {0x06, 0, 0, (uint32_t)(k)}                  /* BPF_RET | BPF_K */
#define SECCOMP_ALLOW 0x7fff0000u
#define SECCOMP_KILL_PROCESS 0x80000000u
#define SECCOMP_EPERM (0x00050000u | EPERM)
#define DATA_NR 0
#define DATA_ARCH 4
#define DATA_ARG_LOW(n) (16 + 8 * (n)) /* the low 32 bits of argument n: a pid is an int */
static void guard_the_runner(void) {
	struct bpf_insn filter[] = {
		/* 0 */ LD_ABS(DATA_ARCH),
		/* 1 */ JEQ(NATIVE_ARCH, 1, 0),
		/* 2 */ RET(SECCOMP_KILL_PROCESS),
		/* 3 */ LD_ABS(DATA_NR),
#if defined(__x86_64__)
		/* 4 */ JGE(0x40000000, 0, 1), /* x32 */
		/* 5 */ RET(SECCOMP_EPERM),
#else
		/* 4 */ JEQ(0xffffffffu, 0, 0),
		/* 5 */ JEQ(0xffffffffu, 0, 0),
#endif
		/* 6 */ JEQ(SYS_prlimit64, 7, 0),
		/* 7 */ JEQ(SYS_sched_setaffinity, 6, 0),
		/* 8 */ JEQ(SYS_sched_setscheduler, 5, 0),
		/* 9 */ JEQ(SYS_sched_setparam, 4, 0),
		/* 10 */ JEQ(SYS_sched_setattr, 3, 0),
		/* 11 */ JEQ(SYS_setpriority, 6, 0),
		/* 12 */ JEQ(SYS_ioprio_set, 12, 0),
		/* 13 */ RET(SECCOMP_ALLOW),
		/* 14: the pid is argument 0 */ LD_ABS(DATA_ARG_LOW(0)),
		/* 15 */ JEQ(1, 0, 1),
		/* 16 */ RET(SECCOMP_EPERM),
		/* 17 */ RET(SECCOMP_ALLOW),
		/* 18: setpriority(which, who): PRIO_PROCESS (0) only */ LD_ABS(DATA_ARG_LOW(0)),
		/* 19 */ JEQ(0, 0, 4),
		/* 20 */ LD_ABS(DATA_ARG_LOW(1)),
		/* 21 */ JEQ(1, 0, 1),
		/* 22 */ RET(SECCOMP_EPERM),
		/* 23 */ RET(SECCOMP_ALLOW),
		/* 24: not a process: a group or a user */ RET(SECCOMP_EPERM),
		/* 25: ioprio_set(which, who): IOPRIO_WHO_PROCESS (1) only */ LD_ABS(DATA_ARG_LOW(0)),
		/* 26 */ JEQ(1, 0, 4),
		/* 27 */ LD_ABS(DATA_ARG_LOW(1)),
		/* 28 */ JEQ(1, 0, 1),
		/* 29 */ RET(SECCOMP_EPERM),
		/* 30 */ RET(SECCOMP_ALLOW),
		/* 31 */ RET(SECCOMP_EPERM),
	};
	struct bpf_prog prog = {(unsigned short)(sizeof filter / sizeof filter[0]), filter};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(22 /* PR_SET_SECCOMP */, 2 /* FILTER */, &prog) != 0)
		fail("cannot install the runner's seccomp filter: %s", strerror(errno));
}

static void set_limit(int resource, rlim_t soft, rlim_t hard) {
	struct rlimit r = {soft, hard};
	setrlimit(resource, &r);
}

static void child_exec(const char *command, const char *stdin_path, int out_w, int err_w) {
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setpgid(0, 0);
	int in = open(stdin_path, O_RDONLY);
	if (in < 0 || dup2(in, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0)
		_exit(127);
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
	long long as_kb = env_int("MONACO_AS_KB", 0), nproc = env_int("MONACO_NPROC", 0);
	long long nofile = env_int("MONACO_NOFILE", 0), fsize_kb = env_int("MONACO_FSIZE_KB", 0);
	set_limit(RLIMIT_CORE, 0, 0);
	/* CPU time: SIGXCPU at the soft limit, SIGKILL a second later for a program that ignores it. */
	set_limit(RLIMIT_CPU, (rlim_t)(cpu_limit_ms / 1000), (rlim_t)(cpu_limit_ms / 1000 + 1));
	if (fsize_kb > 0)
		set_limit(RLIMIT_FSIZE, (rlim_t)fsize_kb * 1024, (rlim_t)fsize_kb * 1024);
	if (as_kb > 0)
		set_limit(RLIMIT_AS, (rlim_t)as_kb * 1024, (rlim_t)as_kb * 1024);
	if (nofile > 0)
		set_limit(RLIMIT_NOFILE, (rlim_t)nofile, (rlim_t)nofile);
	if (nproc > 0)
		set_limit(RLIMIT_NPROC, (rlim_t)nproc, (rlim_t)nproc);
	/* The program shares the runner's memory cgroup: make it the OOM killer's first choice. */
	int adj = open("/proc/self/oom_score_adj", O_WRONLY);
	if (adj >= 0) {
		if (write(adj, "1000", 4) != 4) { /* best effort */
		}
		close(adj);
	}
	/* The submission's arguments become sh's positional parameters, never part of the command text. */
	static char *argv[4 + 256];
	long long argc = env_int("MONACO_ARGC", 0);
	if (argc < 0 || argc > 256)
		_exit(127);
	int n = 0;
	argv[n++] = "sh";
	argv[n++] = "-c";
	argv[n++] = (char *)command;
	argv[n++] = "sh";
	for (long long i = 0; i < argc; i++) {
		char name[32];
		snprintf(name, sizeof name, "MONACO_ARG_%lld", i);
		const char *v = getenv(name);
		argv[n++] = v ? strdup(v) : "";
		unsetenv(name);
	}
	argv[n] = NULL;
	unsetenv("MONACO_ARGC");
	execve("/bin/sh", argv, environ);
	_exit(127);
}

/* Read what is there; keep the first out_limit bytes; count all. Returns 0 at EOF. */
static int drain(struct capture *c) {
	char chunk[65536];
	for (;;) {
		ssize_t n = read(c->fd, chunk, sizeof chunk);
		if (n > 0) {
			if (c->total < (uint64_t)out_limit) {
				uint64_t room = (uint64_t)out_limit - c->total;
				memcpy(c->buf + c->total, chunk, (size_t)n < room ? (size_t)n : room);
			}
			c->total += (uint64_t)n;
			continue;
		}
		if (n == 0) {
			close(c->fd);
			c->fd = -1;
			return 0;
		}
		return errno == EAGAIN || errno == EINTR ? 1 : (close(c->fd), c->fd = -1, 0);
	}
}

/* Warm pool: copy exactly n bytes of stdin into dir/name. */
static void receive_file(const char *dir, const char *name, long long n) {
	char to[4096];
	snprintf(to, sizeof to, "%s/%s", dir, name);
	int o = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (o < 0)
		fail("no job: cannot write %s: %s", to, strerror(errno));
	char buf[65536];
	while (n > 0) {
		ssize_t r = read(0, buf, n < (long long)sizeof buf ? (size_t)n : sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			fail("no job: stdin ended %lld bytes early", n);
		if (write(o, buf, (size_t)r) != r)
			fail("no job: cannot write %s: %s", to, strerror(errno));
		n -= r;
	}
	close(o);
}

/* Warm pool: one job from stdin (see the header) into the source dir, acknowledged on stdout. */
static void receive_job(const char *src_dir, const char *source) {
	char header[128];
	size_t len = 0;
	for (;;) {
		ssize_t r = read(0, header + len, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			fail("no job: stdin ended before the job's header");
		if (header[len] == '\n')
			break;
		if (++len == sizeof header - 1)
			fail("no job: the job's header is too long");
	}
	header[len] = 0;
	long long src_n = -1, in_n = -1;
	char tail;
	if (sscanf(header, "MONACO-JOB v1 %lld %lld%c", &src_n, &in_n, &tail) != 2 || src_n < 0 || in_n < 0)
		fail("no job: malformed header");
	mkdirs(src_dir);
	receive_file(src_dir, source, src_n);
	receive_file(src_dir, "stdin", in_n);
	printf("#MONACO-JOB v1 ACCEPTED\n");
	fflush(stdout);
}

/* Warm pool: the run container waits for the compile container's end, marked in the shared build dir. */
static void await_compile(const char *build_dir) {
	char done[4096];
	snprintf(done, sizeof done, "%s/.monaco-done", build_dir);
	while (access(done, F_OK) != 0) {
		struct timespec ms = {0, 5000000};
		nanosleep(&ms, NULL);
	}
}

/* Copy the submission's extra source files (MONACO_FILES) from the source dir into `dir`. */
static void copy_extra_files(const char *src_dir, const char *dir) {
	const char *names = getenv("MONACO_FILES");
	if (!names || !*names)
		return;
	char list[8192], from[4096];
	snprintf(list, sizeof list, "%s", names);
	for (char *save, *p = strtok_r(list, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
		if (*p == '.' || *p == '-')
			fail("runner misconfigured: extra file name '%s'", p);
		snprintf(from, sizeof from, "%s/%s", src_dir, p);
		copy_file(from, dir, p);
	}
}

/* One run of the phase's command: copy the sources into `dir`, start it, watch it, measure it. */
static void run_once(int compile, const char *command, const char *src_dir, const char *source, const char *src,
		     const char *dir, const char *stdin_path, const char *marker, int sfd) {
	mkdirs(dir);
	copy_file(src, dir, source);
	copy_extra_files(src_dir, dir);
	if (chdir(dir) != 0)
		fail("cannot enter %s: %s", dir, strerror(errno));

	int po[2], pe[2];
	if (pipe2(po, O_CLOEXEC) != 0)
		fail("pipe: %s", strerror(errno));
	if (compile || env_int("MONACO_MERGE_STDERR", 0) == 1) { /* one stream: the compile output, or as asked */
		pe[0] = -1;
		pe[1] = po[1];
	} else if (pipe2(pe, O_CLOEXEC) != 0) {
		fail("pipe: %s", strerror(errno));
	}
	int cgroup = env_int("MONACO_CGROUP_MEMORY", 0) == 1;
	long long oom_before = cgroup ? oom_kill_count() : -1;

	long long start = now_ns(), deadline = start + timeout_ms * 1000000LL, end = 0;
	pid_t child = fork();
	if (child < 0)
		fail("cannot start the program: %s", strerror(errno));
	if (child == 0)
		child_exec(command, stdin_path, po[1], pe[1]);
	close(po[1]);
	if (pe[0] >= 0)
		close(pe[1]);
	out.fd = po[0];
	err.fd = pe[0];
	fcntl(out.fd, F_SETFL, O_NONBLOCK);
	if (err.fd >= 0)
		fcntl(err.fd, F_SETFL, O_NONBLOCK);

	int running = 1;
	long long stop_by = 0; /* once the program is over: when to give up on draining */
	while (running || ((out.fd >= 0 || err.fd >= 0) && now_ns() < stop_by)) {
		struct pollfd fds[3] = {{out.fd, POLLIN, 0}, {err.fd, POLLIN, 0}, {sfd, POLLIN, 0}};
		long long until = running ? deadline : stop_by;
		long long wait_ms = (until - now_ns() + 999999) / 1000000;
		int n = poll(fds, 3, wait_ms < 0 ? 0 : (int)(wait_ms > 1000 ? 1000 : wait_ms));
		if (n < 0 && errno != EINTR)
			fail("poll: %s", strerror(errno));
		if (out.fd >= 0 && fds[0].revents)
			drain(&out);
		if (err.fd >= 0 && fds[1].revents)
			drain(&err);
		/* A compiler's long error list is cut, not stopped; a program's flood ends the program. */
		if (running && !compile && !output_exceeded &&
		    (out.total > (uint64_t)out_limit || err.total > (uint64_t)out_limit)) {
			output_exceeded = 1;
			end = now_ns();
			kill_all(child);
		}
		struct signalfd_siginfo si;
		while (read(sfd, &si, sizeof si) == sizeof si) {
		}
		int st;
		pid_t p;
		while ((p = waitpid(-1, &st, WNOHANG | __WALL)) > 0)
			if (p == child) {
				status = st;
				if (!end)
					end = now_ns();
			}
		if (running && status != -1) { /* the program is over: so is everything it started */
			running = 0;
			kill_all(child);
			stop_by = now_ns() + DRAIN_MS * 1000000LL;
		} else if (running && !timed_out && now_ns() >= deadline) {
			timed_out = 1;
			end = now_ns();
			kill_all(child);
			deadline = end + DRAIN_MS * 1000000LL; /* now: how long a killed program may take to die */
		} else if (running && timed_out && now_ns() >= deadline) {
			break; /* unkillable (stuck in the kernel): report what was measured */
		}
	}
	wall_ns = (end ? end : now_ns()) - start;
	if (wall_ns >= timeout_ms * 1000000LL)
		timed_out = 1; /* measured, whatever ended it */
	/* Reap what is left (as PID 1, orphans are ours), for complete CPU accounting. */
	for (long long give_up = now_ns() + DRAIN_MS * 1000000LL; now_ns() < give_up;) {
		pid_t p = waitpid(-1, NULL, WNOHANG | __WALL);
		if (p < 0)
			break;
		if (p == 0) {
			struct timespec ms = {0, 1000000};
			nanosleep(&ms, NULL);
		}
	}
	struct rusage ru;
	static long long cpu_before; /* rusage of children adds up over the test cases */
	if (getrusage(RUSAGE_CHILDREN, &ru) == 0) {
		long long total = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000LL +
				  (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
		cpu_ms = total - cpu_before;
		cpu_before = total;
		memory_kb = ru.ru_maxrss;
	}
	wipe_scratch();
	if (cgroup) {
		long long peak = memory_peak_kb(), after = oom_kill_count();
		if (peak >= 0)
			memory_kb = peak;
		if (after >= 0 && oom_before >= 0)
			oom_kills = after - oom_before;
	}
	if (compile && status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0 && !timed_out &&
	    !output_exceeded)
		touch(marker);
}

int main(int argc, char **argv) {
	/* Out of the program's reach before anything else: not dumpable means no ptrace, no /proc/1/mem. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
	phase = argc > 1 ? argv[1] : "run";
	make_nonce();
	if (strcmp(phase, "compile") != 0 && strcmp(phase, "run") != 0) {
		phase = "run";
		fail("unknown phase '%s' (expected compile or run)", argv[1]);
	}
	const char *mode = argc > 2 ? argv[2] : "";
	if (*mode && strcmp(mode, "job") != 0 && strcmp(mode, "after-compile") != 0)
		fail("unknown mode '%s' (expected job or after-compile)", mode);
	guard_the_runner();
	timeout_ms = env_int("MONACO_TIMEOUT_MS", 10000);
	out_limit = env_int("MONACO_OUTPUT_LIMIT", 65536);
	if (timeout_ms < 1 || out_limit < 1)
		fail("runner misconfigured: MONACO_TIMEOUT_MS and MONACO_OUTPUT_LIMIT must be positive");
	cpu_limit_ms = ((timeout_ms + 999) / 1000 + 1) * 1000;
	/* Every byte the runner needs later is allocated and touched now: when the program has filled its
	 * memory cgroup, the runner must not need a new page to report it. */
	out.buf = malloc((size_t)out_limit);
	err.buf = malloc((size_t)out_limit);
	if (!out.buf || !err.buf)
		fail("cannot allocate the output buffers");
	memset(out.buf, 0, (size_t)out_limit);
	memset(err.buf, 0, (size_t)out_limit);
	memset(outbuf, 0, sizeof outbuf);

	const char *src_dir = need("MONACO_SRC_DIR"), *source = need("MONACO_SOURCE_FILE");
	const char *build_dir = need("MONACO_BUILD_DIR"), *work_dir = need("MONACO_WORK_DIR");
	const char *command = need("MONACO_COMMAND");
	int compile = strcmp(phase, "compile") == 0;
	if (compile && *mode) /* the run container of a warm pod waits for it, whatever the compile's fate */
		snprintf(done_marker, sizeof done_marker, "%s/.monaco-done", build_dir);
	if (strcmp(mode, "job") == 0)
		receive_job(src_dir, source);
	else if (strcmp(mode, "after-compile") == 0)
		await_compile(build_dir);
	char src[4096], stdin_path[4096], marker[4096];
	snprintf(src, sizeof src, "%s/%s", src_dir, source);
	snprintf(marker, sizeof marker, "%s/.monaco-compiled", build_dir);
	snprintf(stdin_path, sizeof stdin_path, "%s/stdin", src_dir);
	if (compile || access(stdin_path, R_OK) != 0)
		snprintf(stdin_path, sizeof stdin_path, "/dev/null");
	if (!compile && env_int("MONACO_NEEDS_COMPILE", 0) == 1 && access(marker, F_OK) != 0)
		fail("not run: the compile phase did not succeed");
	const char *dir = compile ? build_dir : work_dir;
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	int sfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0)
		fail("signalfd: %s", strerror(errno));
	long long cases = compile ? 0 : env_int("MONACO_CASES", 0);
	if (cases <= 0) {
		run_once(compile, command, src_dir, source, src, dir, stdin_path, marker, sfd);
		mark_done();
		emit();
		return 0;
	}
	for (case_index = 0; case_index < cases; case_index++) {
		snprintf(stdin_path, sizeof stdin_path, "%s/stdin-%d", src_dir, case_index);
		run_once(compile, command, src_dir, source, src, dir, stdin_path, marker, sfd);
		emit();
		/* the next case starts from nothing the last one measured */
		status = -1, wall_ns = cpu_ms = 0, timed_out = output_exceeded = 0;
		memory_kb = oom_kills = -1;
		out.total = err.total = 0;
		error[0] = 0;
	}
	return 0;
}
