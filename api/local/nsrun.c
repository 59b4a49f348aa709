/*
 * nsrun: the local sandbox's launcher, in one process instead of a dozen.
 *
 * Does what `unshare --net --pid --ipc --uts --mount --fork --mount-proc` followed by a shell of
 * `mount` calls and `setpriv` would do, without their dozen fork/execs (a millisecond each, on
 * every run): join the run's cgroups, enter new namespaces, fork the child that becomes PID 1,
 * mount fresh tmpfs over the world-writable places and /proc, bind the run's source (read-only)
 * and build dirs, drop to the sandbox uid with no capabilities and no_new_privs, and exec the
 * command with the environment nsrun itself was given.
 *
 * usage: nsrun BASE PHASE UID TMP_MB CGROUP_DIRS -- COMMAND...
 *   BASE         host dir holding src/ and build/
 *   PHASE        compile (build dir writable) or run (build dir read-only)
 *   UID          uid and gid of the program
 *   TMP_MB       size of the sandbox's /tmp
 *   CGROUP_DIRS  colon-separated cgroup dirs to join ("" for none)
 * Exit status: the child's (128 + signal if it was killed); 111 if the sandbox could not be made.
 * Built by api/local/sandbox.py with the host's cc at start-up; the shell path is used without cc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define INSIDE "/tmp/.monaco"

extern char **environ;

static void die(const char *what) {
	fprintf(stderr, "nsrun: %s: %s\n", what, strerror(errno));
	_exit(111);
}

static void join_cgroups(char *dirs) {
	char path[4096], pid[32];
	for (char *d = strtok(dirs, ":"); d; d = strtok(NULL, ":")) {
		snprintf(path, sizeof path, "%s/cgroup.procs", d);
		int fd = open(path, O_WRONLY);
		if (fd < 0)
			die(path);
		int n = snprintf(pid, sizeof pid, "%d", (int)getpid());
		if (write(fd, pid, n) != n)
			die(path);
		close(fd);
	}
}

static void tmpfs(const char *where, const char *size) {
	char opts[64];
	struct stat st;
	if (stat(where, &st) != 0)
		return; /* nothing to cover */
	snprintf(opts, sizeof opts, "size=%s,mode=1777", size);
	if (mount("tmpfs", where, "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0)
		die(where);
}

static void bind(const char *from, const char *to, int readonly) {
	if (mount(from, to, NULL, MS_BIND, NULL) != 0)
		die(to);
	if (readonly && mount(NULL, to, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) != 0)
		die(to);
}

/*
 * A seccomp filter with what no judged program needs and what widens the kernel's attack surface
 * or escapes the namespaces: tracing other processes, new namespaces (user namespaces above all),
 * keyrings (not namespaced), bpf, perf, userfaultfd, and vsock sockets, which a network namespace
 * does not cover (they reach the hypervisor). clone3 answers ENOSYS, so that libc falls back to
 * clone, whose flags the filter can see. Everything else is allowed; it fails with EPERM.
 */
#define DENY(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM)
#define ARG(n) offsetof(struct seccomp_data, args[n])
static void seccomp_filter(void) {
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1), /* x32 syscalls */
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		DENY(SYS_ptrace),
		DENY(SYS_process_vm_readv),
		DENY(SYS_process_vm_writev),
		DENY(SYS_unshare),
		DENY(SYS_setns),
		DENY(SYS_keyctl),
		DENY(SYS_add_key),
		DENY(SYS_request_key),
		DENY(SYS_bpf),
		DENY(SYS_perf_event_open),
		DENY(SYS_userfaultfd),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		/* clone: no new namespaces */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG(0)),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K,
			 CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS |
			     CLONE_NEWCGROUP,
			 0, 4),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		/* socket: no vsock */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_socket, 0, 2),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG(0)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 40 /* AF_VSOCK */, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
	};
	struct sock_fprog prog = {.len = sizeof filter / sizeof filter[0], .filter = filter};
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
		die("seccomp");
}

static void child(const char *base, const char *phase, uid_t uid, const char *tmp_mb, char **cmd) {
	char src[4096], build[4096], size[32];
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
		die("pdeathsig");
	/* Programs yield the CPU to the service: under load the API keeps answering promptly. */
	if (setpriority(PRIO_PROCESS, 0, 10) != 0)
		die("setpriority");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
		die("private /");
	snprintf(src, sizeof src, "%s/src", base);
	snprintf(build, sizeof build, "%s/build", base);
	snprintf(size, sizeof size, "%sm", tmp_mb);
	tmpfs("/tmp", size);
	tmpfs("/var/tmp", "1m");
	tmpfs("/dev/shm", "1m");
	tmpfs("/run/lock", "1m");
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
		die("/proc");
	if (mkdir(INSIDE, 0755) || mkdir(INSIDE "/src", 0755) || mkdir(INSIDE "/build", 0755))
		die("mkdir " INSIDE);
	bind(src, INSIDE "/src", 1);
	bind(build, INSIDE "/build", strcmp(phase, "run") == 0);
	for (int cap = 0; cap <= 63; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
			die("capbset");
	if (setgroups(0, NULL) != 0 || setresgid(uid, uid, uid) != 0 || setresuid(uid, uid, uid) != 0)
		die("drop to the sandbox uid");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		die("no_new_privs");
	seccomp_filter();
	execve(cmd[0], cmd, environ);
	die(cmd[0]);
}

int main(int argc, char **argv) {
	if (argc < 8 || strcmp(argv[6], "--") != 0) {
		fprintf(stderr, "usage: nsrun BASE PHASE UID TMP_MB CGROUP_DIRS -- COMMAND...\n");
		return 111;
	}
	uid_t uid = (uid_t)strtoul(argv[3], NULL, 10);
	if (uid == 0) {
		fprintf(stderr, "nsrun: refusing to run a program as root\n");
		return 111;
	}
	join_cgroups(argv[5]);
	if (unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS) != 0)
		die("unshare");
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0)
		child(argv[1], argv[2], uid, argv[4], argv + 7);
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			die("waitpid");
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
