#!/bin/sh
# Monaco runner, protocol v1: the one script every back end runs inside its sandbox.
#
#   runner.sh compile   copy the source into $MONACO_BUILD_DIR and run the language's compile command
#   runner.sh run       copy the source into $MONACO_WORK_DIR and run the program with stdin
#
# Each phase runs the user's command under its own rlimits and wall-clock timer, with stdout and stderr
# sent to files (never to this script's stdout), then kills whatever the program left behind and prints
# exactly one result envelope on stdout. The envelope is framed by markers that carry a random nonce and
# encodes every byte the program wrote in base64, so a program that prints marker-like text cannot
# change the result: the parser reads only the last envelope, which starts after the program's whole
# process tree is dead (this script is PID 1 of its PID namespace in both back ends).
#
# Inputs (environment):
#   MONACO_SRC_DIR       read-only dir holding the source file and, optionally, `stdin`
#   MONACO_SOURCE_FILE   file name of the source (main.py, Main.java, ...)
#   MONACO_BUILD_DIR     compile artifacts (writable in `compile`, may be read-only in `run`)
#   MONACO_WORK_DIR      scratch working dir of the program (created if missing)
#   MONACO_COMMAND       the sh command of this phase
#   MONACO_TIMEOUT_MS    wall-clock limit of the command
#   MONACO_OUTPUT_LIMIT  bytes kept per stream; writing more ends the program (RLIMIT_FSIZE)
#   MONACO_AS_KB         RLIMIT_AS in KiB (0: not set)
#   MONACO_NPROC         RLIMIT_NPROC (0: not set)
#   MONACO_NOFILE        RLIMIT_NOFILE (0: not set)
#   MONACO_FSIZE_KB      RLIMIT_FSIZE in KiB for compile (run uses the output limit)
#   MONACO_CGROUP_MEMORY 1 to report the peak of this container's memory cgroup
#   MONACO_NEEDS_COMPILE 1 when `run` must find a successful compile in the build dir first
#   MONACO_SELF_PROTECT  1 to re-exec from an execute-only copy of the shell first (see below)
set -u
PATH=${PATH:-/usr/local/bin:/usr/bin:/bin}
phase=${1:-run}
# Where the runner shares its uid with the program (a Kubernetes pod), the program could ptrace it, or
# read /proc/1/mem, and forge the envelope. A process started from a file its own uid cannot read is
# not dumpable, which puts it out of reach: so the runner first re-executes itself (still PID 1) from
# an execute-only copy of the shell. The local sandbox starts it from such a copy already.
if [ "${MONACO_SELF_PROTECT:-0}" = 1 ] && [ -z "${MONACO_PROTECTED:-}" ]; then
	read -r shcopy </proc/sys/kernel/random/uuid
	shcopy="${TMPDIR:-/tmp}/.monaco-sh-$shcopy"
	if cp /bin/sh "$shcopy" && chmod 0111 "$shcopy"; then
		MONACO_PROTECTED=1 exec "$shcopy" "$0" "$@"
	fi
fi
# Everything below avoids forks where a builtin will do: each one is a millisecond of every run.
read -r nonce </proc/sys/kernel/random/uuid
# The capture files are named by a second random value: the program can list $TMPDIR, and the nonce
# must stay unknown to it.
read -r tag </proc/sys/kernel/random/uuid
timeout_ms=${MONACO_TIMEOUT_MS:-10000}
out_limit=${MONACO_OUTPUT_LIMIT:-65536}
out="${TMPDIR:-/tmp}/.monaco-$tag.out"
err="${TMPDIR:-/tmp}/.monaco-$tag.err"
status=""
wall_ns=0
timed_out=0
error=""
memory_kb=""
out_bytes=0
err_bytes=0

encode() { # the first $out_limit bytes of a file, base64 on one line
	if [ "$2" -gt "$out_limit" ]; then
		head -c "$out_limit" "$1" | base64 -w0
	elif [ "$2" -gt 0 ]; then
		base64 -w0 "$1"
	fi
}
measure() {
	# Only regular files, never links: the program runs as this script's user and may have replaced a
	# capture file by a link to something endless or blocking (/proc/1/pagemap), which would hang wc.
	if [ -f "$out" ] && [ ! -L "$out" ] && [ -f "$err" ] && [ ! -L "$err" ]; then
		# shellcheck disable=SC2046 # word splitting is the point
		set -- $(wc -c "$out" "$err")
		out_bytes=$1 err_bytes=$3
	fi
	[ "${MONACO_CGROUP_MEMORY:-0}" = 1 ] || return 0
	for f in /sys/fs/cgroup/memory.peak /sys/fs/cgroup/memory/memory.max_usage_in_bytes; do
		if [ -r "$f" ] && read -r bytes <"$f"; then
			memory_kb=$((bytes / 1024))
			return 0
		fi
	done
}
reap() { # kill everything the program left behind, and let it die before this script forks again
	if [ "$$" = 1 ]; then
		kill -KILL -1 2>/dev/null
		wait 2>/dev/null
		# Dying processes still hold the memory and process slots this script shares with them: a fork
		# now can fail ("Cannot fork"), which ends a shell without its envelope. Builtins only, until
		# every other process is a zombie (its memory freed) or gone; bounded in case one never dies.
		tries=0
		while [ "$tries" -lt 2000 ]; do
			alive=0
			for p in /proc/[0-9]*; do
				[ "$p" = /proc/1 ] && continue
				while read -r key value; do
					if [ "$key" = State: ]; then
						case $value in Z*) ;; *) alive=1 ;; esac
						break
					fi
				done 2>/dev/null <"$p/status"
				[ "$alive" = 1 ] && break
			done
			[ "$alive" = 0 ] && break
			tries=$((tries + 1))
		done
	fi
}
emit() {
	measure
	printf '\n#MONACO-ENVELOPE v1 BEGIN %s\n' "$nonce"
	printf 'phase=%s\nexit=%s\nwall_ns=%s\ntimed_out=%s\n' "$phase" "$status" "$wall_ns" "$timed_out"
	printf 'timeout_ms=%s\noutput_limit=%s\nmemory_kb=%s\n' "$timeout_ms" "$out_limit" "$memory_kb"
	printf 'stdout_bytes=%s\nstderr_bytes=%s\nerror=%s\n' "$out_bytes" "$err_bytes" "$error"
	printf 'stdout='
	encode "$out" "$out_bytes"
	printf '\nstderr='
	encode "$err" "$err_bytes"
	printf '\n#MONACO-ENVELOPE v1 END %s\n' "$nonce"
}
fail() { # the runner itself could not do its job: report it, never the program's fault
	error=$1
	emit
	exit 0
}

for v in MONACO_SRC_DIR MONACO_SOURCE_FILE MONACO_BUILD_DIR MONACO_WORK_DIR MONACO_COMMAND; do
	eval "[ -n \"\${$v:-}\" ]" || fail "runner misconfigured: $v is not set"
done
src="$MONACO_SRC_DIR/$MONACO_SOURCE_FILE"
[ -r "$src" ] || fail "source file $src is missing"
stdin=/dev/null
[ -r "$MONACO_SRC_DIR/stdin" ] && stdin="$MONACO_SRC_DIR/stdin"

case "$phase" in
compile)
	dir=$MONACO_BUILD_DIR
	fsize_kb=${MONACO_FSIZE_KB:-65536}
	stdin=/dev/null
	;;
run)
	dir=$MONACO_WORK_DIR
	fsize_kb=$(((out_limit + 1023) / 1024 + 1))
	if [ "${MONACO_NEEDS_COMPILE:-0}" = 1 ] && [ ! -f "$MONACO_BUILD_DIR/.monaco-compiled" ]; then
		fail "not run: the compile phase did not succeed"
	fi
	;;
*) fail "unknown phase '$phase' (expected compile or run)" ;;
esac
[ -d "$dir" ] || mkdir -p "$dir" 2>/dev/null
cp "$src" "$dir/" 2>/dev/null || fail "cannot copy the source into $dir"
cd "$dir" || fail "cannot enter $dir"
: >"$out" && : >"$err" || fail "cannot create capture files in ${TMPDIR:-/tmp}"

secs=$((timeout_ms / 1000)).$(printf '%03d' $((timeout_ms % 1000)))
# The limits are set on the runner itself (no subshell to fork): nothing it does afterwards comes near
# them, and every process the program starts inherits them.
ulimit -c 0
# CPU time: SIGXCPU at the soft limit (a timeout), SIGKILL a second later for a program that ignores it.
# With soft = hard the kernel sends SIGKILL straight away, and threads that burn CPU faster than the
# clock would end as a runtime error "killed by signal 9".
cpu_s=$(((timeout_ms + 999) / 1000 + 1))
ulimit -S -t "$cpu_s"
ulimit -H -t $((cpu_s + 1))
ulimit -f $((fsize_kb * 2)) # dash counts -f in 512-byte blocks
[ "${MONACO_AS_KB:-0}" -gt 0 ] && ulimit -v "$MONACO_AS_KB"
[ "${MONACO_NOFILE:-0}" -gt 0 ] && ulimit -n "$MONACO_NOFILE"
[ "${MONACO_NPROC:-0}" -gt 0 ] && ulimit -p "$MONACO_NPROC"
# The program shares the runner's memory limit: make it the OOM killer's first choice, so that a fork
# bomb of small processes loses one of its own and never the runner (or nothing would report the run).
# Raising one's own oom_score_adj needs no privilege.
command="echo 1000 2>/dev/null >/proc/self/oom_score_adj; $MONACO_COMMAND"
start=$(date +%s%N)
if [ "$phase" = compile ]; then
	timeout -s KILL "$secs" sh -c "$command" <"$stdin" >"$out" 2>&1
else
	timeout -s KILL "$secs" sh -c "$command" <"$stdin" >"$out" 2>"$err"
fi
status=$?
reap
end=$(date +%s%N)
wall_ns=$((end - start))
if [ "$status" -ge 128 ] && [ "$wall_ns" -ge $((timeout_ms * 1000000)) ]; then
	timed_out=1
fi
if [ "$phase" = compile ] && [ "$status" = 0 ] && [ "$timed_out" = 0 ]; then
	: >"$MONACO_BUILD_DIR/.monaco-compiled"
fi
emit
[ "$$" = 1 ] || rm -f "$out" "$err"
exit 0
