#!/usr/bin/env bash
# Prove the images work without Kubernetes: build them (free when cached), start a PRIVATE containerd
# (own config, root, state and socket in a temp dir; a system-wide one is never touched), import them
# with import.sh (twice: the second must be a no-op) and run each image once the way a sandbox pod
# would: read-only root file system, a tmpfs /tmp, the default seccomp profile, a non-root uid.
#
#   e2e/images/selftest.sh
#
# Needs root. Installs containerd and runc from Debian when they are missing.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=images.env
. "$HERE/images.env"

log() { printf '[selftest %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
T0=$(date +%s)

if ! command -v containerd >/dev/null || ! command -v runc >/dev/null || ! command -v ctr >/dev/null; then
	log "installing containerd and runc"
	apt-get update -qq -o DPkg::Lock::Timeout=600
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 containerd runc >/dev/null
fi

bash "$HERE/build.sh" all >/dev/null

D=$(mktemp -d /tmp/monaco-images-selftest.XXXXXX)
SOCK=$D/containerd.sock
CPID=""
stop_containerd() {
	[ -n "$CPID" ] || return 0
	if kill -0 "$CPID" 2>/dev/null; then
		kill -TERM "$CPID" 2>/dev/null || true
		# wait for it to exit, at most 30 s, then kill it
		for _ in $(seq 300); do kill -0 "$CPID" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$CPID" 2>/dev/null && kill -KILL "$CPID" 2>/dev/null
	fi
	wait "$CPID" 2>/dev/null || true
	CPID=""
}
cleanup() {
	local rc=$? m
	# Leftover containers (a failed run): kill and delete them before stopping containerd.
	if [ -n "$CPID" ] && [ -S "$SOCK" ]; then
		for m in $(ctr --address "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
			ctr --address "$SOCK" -n k8s.io tasks kill -s KILL "$m" >/dev/null 2>&1 || true
			ctr --address "$SOCK" -n k8s.io tasks delete -f "$m" >/dev/null 2>&1 || true
		done
		for m in $(ctr --address "$SOCK" -n k8s.io containers ls -q 2>/dev/null); do
			ctr --address "$SOCK" -n k8s.io containers delete "$m" >/dev/null 2>&1 || true
		done
	fi
	stop_containerd
	if [ $rc != 0 ] && [ -f "$D/containerd.log" ]; then
		log "containerd log (tail):"
		tail -n 20 "$D/containerd.log" >&2
	fi
	# Unmount anything containerd left below the temp dir, deepest first, then remove it.
	while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done < <(
		awk -v d="$D/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
	if awk -v d="$D/" 'index($5, d) == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; then
		log "warning: mounts remain below $D; left in place"
	else
		rm -rf --one-file-system "$D"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$D/config.toml" <<EOF
version = 2
root = "$D/root"
state = "$D/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = "$D/debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$D/opt"
EOF
containerd --config "$D/config.toml" >"$D/containerd.log" 2>&1 &
CPID=$!
ok=0
for _ in $(seq 300); do # up to 30 s for the socket to answer
	if [ -S "$SOCK" ] && ctr --address "$SOCK" version >/dev/null 2>&1; then ok=1; break; fi
	kill -0 "$CPID" 2>/dev/null || break
	sleep 0.1
done
[ $ok = 1 ] || die "private containerd did not come up (log in $D/containerd.log)"
log "private containerd $(containerd --version | awk '{print $3}') up on $SOCK"

t=$(date +%s)
bash "$HERE/import.sh" "$SOCK"
log "import: $(($(date +%s) - t))s"
out=$(bash "$HERE/import.sh" "$SOCK" 2>&1) || die "second import.sh: $out"
grep -v 'already imported' <<<"$out" && die "second import.sh was not a no-op"
log "second import: no-op"
ctr --address "$SOCK" -n k8s.io images ls | awk 'NR > 1 { print "  " $1, $4, $5 }' >&2

CTR=(ctr --address "$SOCK" -n k8s.io)
PASS=0
# run_in IMAGE AS_ROOT|AS_USER EXPECT SCRIPT: run SCRIPT with sh in a fresh container, check its output.
run_in() {
	local image=$1 who=$2 expect=$3 script=$4 id out t as=()
	id=selftest-$$-$RANDOM
	[ "$who" = AS_USER ] && as=(setpriv --reuid=1000 --regid=1000 --clear-groups)
	t=$(date +%s%N)
	out=$("${CTR[@]}" run --rm --read-only --seccomp --env HOME=/tmp --env TMPDIR=/tmp \
		--mount type=tmpfs,src=tmpfs,dst=/tmp,options=rw:nosuid:nodev:mode=1777:size=268435456 \
		"$image" "$id" "${as[@]}" sh -c "$script" 2>&1) || die "$image: exited $?: $out"
	if ! grep -qE "$expect" <<<"$out"; then
		die "$image: expected /$expect/ in: $out"
	fi
	PASS=$((PASS + 1))
	log "ok  $image ($((($(date +%s%N) - t) / 1000000)) ms): $(tr '\n' ' ' <<<"$out" | cut -c1-110)"
}

# The tools the languages' commands rely on in every language image (the runner itself is static).
# shellcheck disable=SC2016 # expanded inside the container
RUNNER_TOOLS='d=$(mktemp -d) && date +%s%N | grep -qE "^[0-9]{19}$" && printf abc | base64 | grep -q YWJj &&
od -An -N4 -tx1 /dev/urandom | tr -d " \n" | grep -qE "^[0-9a-f]{8}$" && head -c 3 /etc/os-release | cat >"$d/x" &&
wc -c <"$d/x" | grep -q 3 && (sleep 30 & p=$!; kill -KILL $p; wait $p 2>/dev/null; [ $? = 137 ]) && kill -0 $$ &&
ulimit -c 0 && ulimit -t 5 && ulimit -f 1000 && ulimit -v 4000000 && ulimit -n 256 && ulimit -p 256 &&
[ "$(id -u)" = 1000 ] && ! touch /x 2>/dev/null && echo runner-tools-ok'

for img in "$PYTHON_IMAGE" "$JAVA_IMAGE" "$GCC_IMAGE" "$NODE_IMAGE"; do
	run_in "$img" AS_USER 'runner-tools-ok' "$RUNNER_TOOLS"
done
run_in "$PYTHON_IMAGE" AS_USER '^Python 3\.11\.[0-9]+' 'python3 --version'
run_in "$PYTHON_IMAGE" AS_USER '^hello 3\.11$' \
	'cd /tmp && printf "import sys\nprint(\"hello\", \"%%d.%%d\" %% sys.version_info[:2])\n" >main.py && python3 main.py'
# mkoci.py keeps mtimes, so Debian's timestamp-based .pyc files stay valid on a read-only root and the
# JDK keeps its class-data-sharing archive (-Xshare:on fails if the archive cannot be used).
PYC_CHECK='import importlib.util as u, os, sys
def ok(m):
    src = m.__file__; hdr = open(u.cache_from_source(src), "rb").read(16)
    return int.from_bytes(hdr[4:8], "little") != 0 or int.from_bytes(hdr[8:12], "little") == int(os.stat(src).st_mtime) & 0xFFFFFFFF
import json, email.parser, asyncio.base_events, collections
mods = [json, email.parser, asyncio.base_events, collections]
if "/opt/monaco/site" in sys.path:
    import pydantic.main, kubernetes.client.api_client, kopf._core.engines.peering as p; mods += [pydantic.main, kubernetes.client.api_client, p]
bad = [m.__name__ for m in mods if not ok(m)]
print("pyc-ok" if not bad else "stale pyc: %s" % bad)'
run_in "$PYTHON_IMAGE" AS_USER '^pyc-ok$' "python3 -c '$PYC_CHECK'"
run_in "$JAVA_IMAGE" AS_USER 'sharing' 'java -Xshare:on -XX:-UsePerfData -version'
run_in "$JAVA_IMAGE" AS_USER '^Hello, Java 17' \
	'cd /tmp && printf "public class Main { public static void main(String[] a) { System.out.println(\"Hello, Java \" + Runtime.version().feature()); } }\n" >Main.java &&
	javac -J-XX:-UsePerfData -d . Main.java && java -XX:-UsePerfData -Xshare:auto -cp . Main'
run_in "$GCC_IMAGE" AS_USER '^hello from C$' \
	'cd /tmp && printf "#include <stdio.h>\nint main(void){puts(\"hello from C\");return 0;}\n" >main.c &&
	gcc -std=c17 -O2 -pipe -o main main.c -lm && ./main'
run_in "$GCC_IMAGE" AS_USER '^hello from C\+\+17 42$' \
	'cd /tmp && printf "#include <iostream>\n#include <optional>\nint main(){std::optional<int> v{42}; if (auto [a, b] = std::pair{1, 2}; a < b) std::cout << \"hello from C++17 \" << *v << std::endl;}\n" >main.cpp &&
	g++ -std=c++17 -O2 -pipe -o main main.cpp && ./main'
run_in "$NODE_IMAGE" AS_USER '^hello from node v18\.' 'node -e "console.log(\"hello from node\", process.version)"'

# The api/operator image runs as its own user (65532) with its own entrypoint; override it for the check.
t=$(date +%s%N)
out=$("${CTR[@]}" run --rm --read-only --seccomp \
	--mount type=tmpfs,src=tmpfs,dst=/tmp,options=rw:nosuid:nodev:mode=1777 \
	"$MONACO_IMAGE" "selftest-$$-monaco" python3 -c \
	'import os, starlette, kopf, kubernetes, pydantic, uvicorn, monaco.core; print("monaco-deps-ok uid", os.getuid())' 2>&1) ||
	die "$MONACO_IMAGE: $out"
grep -q '^monaco-deps-ok uid 65532$' <<<"$out" || die "$MONACO_IMAGE: unexpected output: $out"
PASS=$((PASS + 1))
log "ok  $MONACO_IMAGE ($((($(date +%s%N) - t) / 1000000)) ms): $out"

out=$("${CTR[@]}" run --rm --read-only --seccomp \
	--mount type=tmpfs,src=tmpfs,dst=/tmp,options=rw:nosuid:nodev:mode=1777 \
	"$MONACO_IMAGE" "selftest-$$-monaco-pyc" python3 -c "$PYC_CHECK" 2>&1) || die "$MONACO_IMAGE: $out"
[ "$out" = pyc-ok ] || die "$MONACO_IMAGE: $out"
PASS=$((PASS + 1))
log "ok  $MONACO_IMAGE: $out"

# The monaco code itself: every entry module imports (a dependency missing from pyproject.toml shows
# here), and the CLI runs from the image's own entrypoint module and package data.
mods=monaco.core
[ -f "$HERE/../../cli/__init__.py" ] && mods="$mods,monaco.cli"
[ -f "$HERE/../../api/server.py" ] && mods="$mods,monaco.api.server"
[ -f "$HERE/../../operator/main.py" ] && mods="$mods,monaco.operator.main"
out=$("${CTR[@]}" run --rm --read-only --seccomp \
	--mount type=tmpfs,src=tmpfs,dst=/tmp,options=rw:nosuid:nodev:mode=1777 \
	"$MONACO_IMAGE" "selftest-$$-monaco-mods" python3 -c "import $mods; print(\"imports-ok\")" 2>&1) ||
	die "$MONACO_IMAGE: import $mods: $out"
PASS=$((PASS + 1))
log "ok  $MONACO_IMAGE: import $mods"
if [ -f "$HERE/../../cli/__init__.py" ]; then
	out=$("${CTR[@]}" run --rm --read-only --seccomp \
		--mount type=tmpfs,src=tmpfs,dst=/tmp,options=rw:nosuid:nodev:mode=1777 \
		"$MONACO_IMAGE" "selftest-$$-monaco-cli" python3 -m monaco.cli languages --local 2>&1) ||
		die "$MONACO_IMAGE: monaco languages --local: $out"
	grep -q '"python"' <<<"$out" || die "$MONACO_IMAGE: 'monaco languages --local' printed no python: $out"
	PASS=$((PASS + 1))
	log "ok  $MONACO_IMAGE: python3 -m monaco.cli languages --local"
fi
# And its config is what the Deployments rely on.
/usr/bin/python3 -I - "$(readlink -f "${MONACO_E2E_CACHE:-/var/cache/monaco-e2e}/images/monaco.tar")" <<'EOF' ||
import json, sys, tarfile
t = tarfile.open(sys.argv[1])
idx = json.load(t.extractfile("index.json"))
man = json.load(t.extractfile("blobs/" + idx["manifests"][0]["digest"].replace(":", "/")))
c = json.load(t.extractfile("blobs/" + man["config"]["digest"].replace(":", "/")))["config"]
assert c["Entrypoint"] == ["python3", "-m", "monaco.cli"], c
assert c["Cmd"] == ["serve"] and c["User"] == "65532:65532", c
assert "PYTHONPATH=/opt/monaco/site" in c["Env"], c
EOF
	die "$MONACO_IMAGE: unexpected image config"
PASS=$((PASS + 1))
log "ok  $MONACO_IMAGE: Entrypoint python3 -m monaco.cli, Cmd serve, User 65532"

# The pause image: starts, stays up, exits 0 on SIGTERM.
id=selftest-$$-pause
"${CTR[@]}" run -d --read-only --seccomp "$PAUSE_IMAGE" "$id" >/dev/null
for _ in $(seq 100); do
	st=$("${CTR[@]}" tasks ls | awk -v i="$id" '$1 == i { print $3 }')
	[ "$st" = RUNNING ] && break
	sleep 0.1
done
[ "$st" = RUNNING ] || die "$PAUSE_IMAGE: not running ($st)"
"${CTR[@]}" tasks kill -s SIGTERM "$id"
for _ in $(seq 100); do
	st=$("${CTR[@]}" tasks ls | awk -v i="$id" '$1 == i { print $3 }')
	[ "$st" = STOPPED ] && break
	sleep 0.1
done
[ "$st" = STOPPED ] || die "$PAUSE_IMAGE: did not stop on SIGTERM ($st)"
# ctr exits with the task's exit status
code=0
"${CTR[@]}" tasks delete "$id" >/dev/null 2>&1 || code=$?
"${CTR[@]}" containers delete "$id"
[ "$code" = 0 ] || die "$PAUSE_IMAGE: exit status $code after SIGTERM"
PASS=$((PASS + 1))
log "ok  $PAUSE_IMAGE: runs, exits 0 on SIGTERM"

trap - EXIT
cleanup
log "$PASS passed, 0 failed in $(($(date +%s) - T0))s"
echo "$PASS passed, 0 failed"
