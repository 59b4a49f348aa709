/*
 * nsrun: the local sandbox's launcher, in one process instead of a dozen.
 *
 * Joins the run's cgroups, enters new mount, PID, network, IPC and UTS namespaces, forks the child
 * that becomes PID 1, and gives it a root of its own, the way bubblewrap does: a fresh tmpfs with
 * read-only binds of the toolchains (/usr and the /bin, /lib... links or dirs beside it) and of the
 * few /etc entries they read, a generated /etc/passwd, group and hosts, its own /proc, a minimal /dev
 * with a private devpts (a few ptys at most), a small /var/tmp, and tmpfs /tmp with the run's source
 * (read-only) and build dir bound in; then pivot_root into it, so that nothing else of the host is
 * reachable: no /run (its unix sockets), /sys, host /var, /home, /root or /dev/mqueue. Then it drops to
 * the sandbox uid with no capabilities, no_new_privs and a seccomp filter, and execs the command with
 * the environment nsrun itself was given. README.md ("What a program sees") lists the resulting view:
 * keep the two alike.
 *
 * usage: nsrun BASE PHASE UID TMP_MB CGROUP_DIRS -- COMMAND...
 *   BASE         host dir holding src/ and build/
 *   PHASE        compile (build dir writable) or run (build dir read-only)
 *   UID          uid and gid of the program
 *   TMP_MB       size of the sandbox's /tmp
 *   CGROUP_DIRS  colon-separated cgroup dirs to join ("" for none)
 * Exit status: the child's (128 + signal if it was killed); 111 if the sandbox could not be made.
 * Built when Monaco is installed (core/native.py); x86_64 and aarch64 only (see the seccomp filter).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <grp.h>
#include <poll.h>
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
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define INSIDE "/tmp/.monaco"
/* The new root is assembled here, in the new mount namespace (the host's /tmp is not touched). */
#define STAGE "/tmp"
#define HOSTNAME "monaco"
/* Ptys of the sandbox's own devpts instance: enough for a program that wants a terminal, and too few
 * to starve the host's (every devpts instance draws on the kernel's one pty.max). */
#define PTY_MAX "8"

/* The top-level entries a toolchain needs: links are recreated (merged /usr), dirs bound read-only. */
static const char *const TOP[] = {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", NULL};
/* /etc entries (fnmatch patterns) the four languages read: the dynamic loader's cache, the time zone,
 * Debian's alternatives (/usr/bin/java, c++...), the JDK's config (jvm.cfg, java.security) and
 * Python's sitecustomize, both of which /usr links into /etc. */
static const char *const ETC[] = {"alternatives", "ld.so.cache", "localtime", "nsswitch.conf", "java-*",
				  "python3*", NULL};
static const struct {
	const char *name;
	unsigned major, minor;
} DEVICES[] = {{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};

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

static void tmpfs(const char *where, unsigned long flags, const char *opts) {
	if (mount("tmpfs", where, "tmpfs", flags, opts) != 0)
		die(where);
}

static void dir(const char *path, mode_t mode) {
	if (mkdir(path, mode) != 0 || chmod(path, mode) != 0)
		die(path);
}

static void file(const char *path, const char *text) {
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	size_t n = strlen(text);
	if (fd < 0 || write(fd, text, n) != (ssize_t)n || close(fd) != 0)
		die(path);
}

static void link_to(const char *target, const char *path) {
	if (symlink(target, path) != 0)
		die(path);
}

/* FLAGS: MS_RDONLY, MS_NOSUID, MS_NODEV; 0 keeps the source's (a device node needs that). */
static void bind(const char *from, const char *to, unsigned long flags) {
	if (mount(from, to, NULL, MS_BIND, NULL) != 0)
		die(to);
	/* MS_BIND with MS_REMOUNT changes this mount's flags only, never the host file system's. */
	if (flags && mount(NULL, to, NULL, MS_BIND | MS_REMOUNT | flags, NULL) != 0)
		die(to);
}
#define RO (MS_RDONLY | MS_NOSUID | MS_NODEV)
#define RW (MS_NOSUID | MS_NODEV)

/* Bind host path FROM at TO (made first, as a dir or an empty file), or copy it if it is a link. */
static void expose(const char *from, const char *to) {
	struct stat st;
	char target[4096];
	if (lstat(from, &st) != 0)
		return; /* not on this host */
	if (S_ISLNK(st.st_mode)) {
		ssize_t n = readlink(from, target, sizeof target - 1);
		if (n < 0)
			die(from);
		target[n] = 0;
		link_to(target, to);
		return;
	}
	if (S_ISDIR(st.st_mode))
		dir(to, 0755);
	else
		file(to, "");
	bind(from, to, RO);
}

static void etc(const char *root, uid_t uid) {
	char to[4096], from[4096], text[1024];
	snprintf(to, sizeof to, "%s/etc", root);
	dir(to, 0755);
	DIR *d = opendir("/etc");
	if (d == NULL)
		die("/etc");
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		for (const char *const *p = ETC; *p; p++)
			if (e->d_name[0] != '.' && fnmatch(*p, e->d_name, 0) == 0) {
				snprintf(from, sizeof from, "/etc/%s", e->d_name);
				snprintf(to, sizeof to, "%s/etc/%s", root, e->d_name);
				expose(from, to);
				break;
			}
	closedir(d);
	snprintf(to, sizeof to, "%s/etc/passwd", root);
	snprintf(text, sizeof text,
		 "root:x:0:0:root:/root:/usr/sbin/nologin\n"
		 "monaco:x:%u:%u:monaco:/tmp:/usr/sbin/nologin\n"
		 "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		 uid, uid);
	file(to, text);
	snprintf(to, sizeof to, "%s/etc/group", root);
	snprintf(text, sizeof text, "root:x:0:\nmonaco:x:%u:\nnogroup:x:65534:\n", uid);
	file(to, text);
	snprintf(to, sizeof to, "%s/etc/hosts", root);
	file(to, "127.0.0.1\tlocalhost " HOSTNAME "\n::1\tlocalhost ip6-localhost ip6-loopback\n");
	snprintf(to, sizeof to, "%s/etc/hostname", root);
	file(to, HOSTNAME "\n");
}

static void dev(const char *root) {
	char to[4096];
	snprintf(to, sizeof to, "%s/dev", root);
	dir(to, 0755);
	tmpfs(to, MS_NOSUID | MS_NOEXEC, "size=64k,nr_inodes=64,mode=0755");
	/* Device nodes of its own (cheaper than binds of the host's: nsrun runs as real root). */
	for (size_t i = 0; i < sizeof DEVICES / sizeof DEVICES[0]; i++) {
		snprintf(to, sizeof to, "%s/dev/%s", root, DEVICES[i].name);
		if (mknod(to, S_IFCHR | 0666, makedev(DEVICES[i].major, DEVICES[i].minor)) != 0 || chmod(to, 0666) != 0)
			die(to);
	}
	static const char *const links[][2] = {{"/proc/self/fd", "fd"},	  {"/proc/self/fd/0", "stdin"},
					       {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
					       {"pts/ptmx", "ptmx"}};
	for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
		snprintf(to, sizeof to, "%s/dev/%s", root, links[i][1]);
		link_to(links[i][0], to);
	}
	snprintf(to, sizeof to, "%s/dev/pts", root);
	dir(to, 0755);
	if (mount("devpts", to, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,max=" PTY_MAX) != 0)
		die(to);
	snprintf(to, sizeof to, "%s/dev/shm", root);
	dir(to, 01777);
	tmpfs(to, MS_NOSUID | MS_NODEV, "size=1m,mode=1777");
	snprintf(to, sizeof to, "%s/dev", root);
	if (mount(NULL, to, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, NULL) != 0)
		die(to);
}

/* The program's whole view of the file system, built at STAGE; returns once STAGE is the root. */
static void new_root(const char *base, const char *phase, uid_t uid, const char *tmp_mb) {
	char path[4096], src[64], build[64], opts[64];
	/* Held open across the tmpfs mounted at STAGE, which may hide BASE. */
	snprintf(path, sizeof path, "%s/src", base);
	int src_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	snprintf(path, sizeof path, "%s/build", base);
	int build_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (src_fd < 0 || build_fd < 0)
		die(path);
	snprintf(src, sizeof src, "/proc/self/fd/%d", src_fd);
	snprintf(build, sizeof build, "/proc/self/fd/%d", build_fd);

	tmpfs(STAGE, MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=1024,mode=0755");
	for (const char *const *t = TOP; *t; t++) {
		char from[64];
		snprintf(from, sizeof from, "/%s", *t);
		snprintf(path, sizeof path, STAGE "/%s", *t);
		expose(from, path);
	}
	etc(STAGE, uid);
	dir(STAGE "/proc", 0555);
	if (mount("proc", STAGE "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
		die("/proc");
	dev(STAGE);
	dir(STAGE "/var", 0755); /* only /var/tmp, small: a place some programs expect to write */
	dir(STAGE "/var/tmp", 01777);
	tmpfs(STAGE "/var/tmp", MS_NOSUID | MS_NODEV, "size=1m,mode=1777");
	dir(STAGE "/tmp", 01777);
	snprintf(opts, sizeof opts, "size=%sm,mode=1777", tmp_mb);
	tmpfs(STAGE "/tmp", MS_NOSUID | MS_NODEV, opts);
	dir(STAGE INSIDE, 0755);
	dir(STAGE INSIDE "/src", 0755);
	dir(STAGE INSIDE "/build", 0755);
	bind(src, STAGE INSIDE "/src", RO);
	bind(build, STAGE INSIDE "/build", strcmp(phase, "run") == 0 ? RO : RW);
	close(src_fd);
	close(build_fd);

	/* pivot_root(".", ".") stacks the old root under the new one; detaching it leaves only the new. */
	if (chdir(STAGE) != 0 || syscall(SYS_pivot_root, ".", ".") != 0)
		die("pivot_root");
	if (umount2(".", MNT_DETACH) != 0 || chdir("/") != 0)
		die("detach the host's root");
	if (mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) != 0)
		die("read-only /");
}

/*
 * A seccomp filter with what no judged program needs and what widens the kernel's attack surface
 * or escapes the namespaces: tracing other processes, new namespaces (user namespaces above all),
 * keyrings (not namespaced), bpf, perf, userfaultfd, io_uring (its own path into the kernel, which
 * a filter cannot see into), and vsock sockets, which a network namespace does not cover (they reach
 * the hypervisor). clone3 answers ENOSYS, so that libc falls back to clone, whose flags the filter
 * can see. Everything else is allowed; the rest fails with EPERM.
 *
 * Syscall numbers come from this build's own headers, so the filter is right for the architecture
 * nsrun is compiled for; the guard below refuses the ones whose audit arch it has not been checked on.
 */
#if defined(__x86_64__)
#define SECCOMP_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SECCOMP_ARCH AUDIT_ARCH_AARCH64
#else
#error "nsrun's seccomp filter supports x86_64 and aarch64; add this architecture's AUDIT_ARCH and check its syscalls"
#endif
#ifndef SYS_io_uring_setup /* older libc headers; the numbers are the same on every architecture */
#define SYS_io_uring_setup 425
#define SYS_io_uring_enter 426
#define SYS_io_uring_register 427
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#define DENY(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM)
#define ARG(n) offsetof(struct seccomp_data, args[n])
static void seccomp_filter(void) {
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SECCOMP_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#if defined(__x86_64__)
		BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1), /* x32 syscalls */
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
#endif
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
		DENY(SYS_io_uring_setup),
		DENY(SYS_io_uring_enter),
		DENY(SYS_io_uring_register),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		/* clone: no new namespaces (its flags are the first argument on both architectures) */
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

static void child(const char *base, const char *phase, uid_t uid, const char *tmp_mb, char **cmd, int alive) {
	/* Programs yield the CPU to the service: under load the API keeps answering promptly. */
	if (setpriority(PRIO_PROCESS, 0, 10) != 0)
		die("setpriority");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
		die("private /");
	if (sethostname(HOSTNAME, strlen(HOSTNAME)) != 0 || setdomainname("", 0) != 0)
		die("hostname");
	new_root(base, phase, uid, tmp_mb);
	for (int cap = 0; cap <= 63; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
			die("capbset");
	if (setgroups(0, NULL) != 0 || setresgid(uid, uid, uid) != 0 || setresuid(uid, uid, uid) != 0)
		die("drop to the sandbox uid");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		die("no_new_privs");
	/* Die with nsrun, and so with the service. Set after the uid drop, which clears it; `alive` is
	 * the read end of a pipe whose write end only nsrun holds: hung up means nsrun died before. */
	struct pollfd parent = {alive, POLLIN, 0};
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
		die("pdeathsig");
	if (poll(&parent, 1, 0) != 0)
		_exit(111);
	close(alive);
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
	/* Die with the service: a sandbox must not outlive the server that would judge it (a restarted
	 * server runs the interrupted submission again, under the same worker's uid). The child (the
	 * sandbox's PID 1) has the same signal tied to nsrun, so the whole namespace goes. */
	pid_t service = getppid();
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
		die("pdeathsig");
	if (getppid() != service)
		return 111; /* the service died before the line above */
	join_cgroups(argv[5]);
	if (unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS) != 0)
		die("unshare");
	int alive[2];
	if (pipe2(alive, O_CLOEXEC) != 0)
		die("pipe");
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		close(alive[1]);
		child(argv[1], argv[2], uid, argv[4], argv + 7, alive[0]);
	}
	close(alive[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			die("waitpid");
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
