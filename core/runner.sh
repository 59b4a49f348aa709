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
set -u
PATH=${PATH:-/usr/local/bin:/usr/bin:/bin}
phase=${1:-run}
nonce=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
timeout_ms=${MONACO_TIMEOUT_MS:-10000}
out_limit=${MONACO_OUTPUT_LIMIT:-65536}
caps=$(mktemp -d "${TMPDIR:-/tmp}/.monaco-runner.XXXXXX") || caps=""
status=""
wall_ns=0
timed_out=0
error=""

encode() { # first $out_limit bytes of a file, base64 on one line
	if [ -n "$caps" ] && [ -f "$1" ]; then head -c "$out_limit" "$1" | base64 | tr -d '\n'; fi
}
size_of() {
	if [ -n "$caps" ] && [ -f "$1" ]; then wc -c <"$1" | tr -d ' '; else echo 0; fi
}
memory_kb() {
	[ "${MONACO_CGROUP_MEMORY:-0}" = 1 ] || return 0
	for f in /sys/fs/cgroup/memory.peak /sys/fs/cgroup/memory/memory.max_usage_in_bytes; do
		if [ -r "$f" ]; then
			read -r bytes <"$f" && echo $((bytes / 1024))
			return 0
		fi
	done
}
reap() { # kill everything the program left behind
	if [ "$$" = 1 ]; then
		kill -KILL -1 2>/dev/null
		wait 2>/dev/null
	fi
}
emit() {
	printf '\n#MONACO-ENVELOPE v1 BEGIN %s\n' "$nonce"
	printf 'phase=%s\n' "$phase"
	printf 'exit=%s\n' "$status"
	printf 'wall_ns=%s\n' "$wall_ns"
	printf 'timed_out=%s\n' "$timed_out"
	printf 'timeout_ms=%s\n' "$timeout_ms"
	printf 'output_limit=%s\n' "$out_limit"
	printf 'memory_kb=%s\n' "$(memory_kb)"
	printf 'stdout_bytes=%s\n' "$(size_of "$caps/stdout")"
	printf 'stderr_bytes=%s\n' "$(size_of "$caps/stderr")"
	printf 'error=%s\n' "$error"
	printf 'stdout=%s\n' "$(encode "$caps/stdout")"
	printf 'stderr=%s\n' "$(encode "$caps/stderr")"
	printf '#MONACO-ENVELOPE v1 END %s\n' "$nonce"
}
fail() { # the runner itself could not do its job: report it, never the program's fault
	error=$1
	emit
	exit 0
}

[ -n "$caps" ] || fail "cannot create a capture directory in ${TMPDIR:-/tmp}"
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
mkdir -p "$dir" 2>/dev/null
cp "$src" "$dir/" 2>/dev/null || fail "cannot copy the source into $dir"
cd "$dir" || fail "cannot enter $dir"

secs=$((timeout_ms / 1000)).$(printf '%03d' $((timeout_ms % 1000)))
cpu_s=$(((timeout_ms + 999) / 1000 + 1))
start=$(date +%s%N)
(
	ulimit -c 0
	ulimit -t "$cpu_s"
	# dash counts -f in 512-byte blocks
	ulimit -f $((fsize_kb * 2))
	[ "${MONACO_AS_KB:-0}" -gt 0 ] && ulimit -v "$MONACO_AS_KB"
	[ "${MONACO_NOFILE:-0}" -gt 0 ] && ulimit -n "$MONACO_NOFILE"
	[ "${MONACO_NPROC:-0}" -gt 0 ] && ulimit -p "$MONACO_NPROC"
	if [ "$phase" = compile ]; then
		exec sh -c "$MONACO_COMMAND" <"$stdin" >"$caps/stdout" 2>&1
	fi
	exec sh -c "$MONACO_COMMAND" <"$stdin" >"$caps/stdout" 2>"$caps/stderr"
) &
pid=$!
(
	sleep "$secs"
	kill -KILL "$pid" 2>/dev/null
) &
timer=$!
wait "$pid"
status=$?
end=$(date +%s%N)
kill -KILL "$timer" 2>/dev/null
wall_ns=$((end - start))
if [ "$status" -ge 128 ] && [ "$wall_ns" -ge $((timeout_ms * 1000000)) ]; then
	timed_out=1
fi
reap
if [ "$phase" = compile ] && [ "$status" = 0 ] && [ "$timed_out" = 0 ]; then
	: >"$MONACO_BUILD_DIR/.monaco-compiled"
fi
emit
rm -rf "$caps" 2>/dev/null
exit 0
