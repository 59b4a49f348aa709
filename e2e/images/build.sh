#!/usr/bin/env bash
# Build the container images of the local e2e cluster as OCI layout tarballs, from Debian root file
# systems; no registry is involved. Usage:
#
#   e2e/images/build.sh [all|base|pause|python|java|gcc|node|monaco]...
#
# Prints one line per image: NAME IMAGE-REFERENCE PATH. Results live in
# ${MONACO_E2E_CACHE:-/var/cache/monaco-e2e}/images, keyed by a hash of their inputs (this script,
# mkoci.py, pause.c, images.env, the Debian suite, the package list and, for the monaco image, the
# working tree of core/ api/ operator/ pyproject.toml), so a warm run takes seconds.
#
#   $CACHE/base/bookworm-minbase-KEY.tar   debootstrap --variant=minbase, built once, shared
#   $CACHE/oci/NAME-KEY.tar (+ .json)      the OCI tarball and its digests (from mkoci.py)
#   $CACHE/NAME.tar, $CACHE/NAME.json      symlinks to the current build (what import.sh reads)
#
# Environment: MONACO_E2E_CACHE (cache root), MONACO_IMAGES_JOBS (images built at once, default 2),
# MONACO_IMAGES_GZIP_LEVEL (default 6). Needs root (debootstrap, chroot, mount).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# -I: never put the current dir on sys.path (the repo root has an operator/ folder that would shadow
# the standard library's operator module) and ignore PYTHON* variables.
PY="/usr/bin/python3 -I"
SUITE=bookworm
CACHE=${MONACO_E2E_CACHE:-/var/cache/monaco-e2e}/images
JOBS=${MONACO_IMAGES_JOBS:-2}
GZIP_LEVEL=${MONACO_IMAGES_GZIP_LEVEL:-6}
ALL_IMAGES=(java gcc monaco python node pause) # longest first: they build JOBS at a time
# shellcheck source=images.env
. "$HERE/images.env"

# The packages of each image, on top of the minbase rootfs (which has dash, coreutils, findutils, sed,
# grep, util-linux and, added below, procps and mawk: what core/runner.sh and the compile commands use).
BASE_INCLUDE="procps,mawk"
declare -A PKGS=(
	[python]="python3-minimal python3"
	[java]="openjdk-17-jdk-headless"
	[gcc]="gcc g++ libc6-dev"
	[node]="nodejs"
	[monaco]="python3-minimal python3"
)
declare -A REF=(
	[pause]=$PAUSE_IMAGE [python]=$PYTHON_IMAGE [java]=$JAVA_IMAGE [gcc]=$GCC_IMAGE
	[node]=$NODE_IMAGE [monaco]=$MONACO_IMAGE
)

log() { printf '[images %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot and mount need it)"

# ---------------------------------------------------------------------------------------------------
# Host tools, installed only when missing (idempotent, and free when they are there).
ensure_host_tools() {
	local missing=()
	command -v debootstrap >/dev/null || missing+=(debootstrap)
	command -v gcc >/dev/null || missing+=(gcc)
	[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || missing+=(libc6-dev)
	command -v musl-gcc >/dev/null || missing+=(musl-tools) # the static monaco-init in the monaco wheel
	$PY -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
	command -v flock >/dev/null || missing+=(util-linux)
	[ ${#missing[@]} = 0 ] && return 0
	log "installing host tools: ${missing[*]}"
	apt-get update -qq -o DPkg::Lock::Timeout=600
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
		--no-install-recommends "${missing[@]}" >/dev/null
}

# The host's Debian mirror and security mirror, read from its apt sources (never hard-coded).
read_mirrors() {
	$PY - <<'EOF'
import glob, re
main = sec = None
def take(uri, suites):
    global main, sec
    uri = uri.rstrip("/")
    if any(s.endswith("-security") or s.endswith("/updates") for s in suites):
        sec = sec or uri
    else:
        main = main or uri
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in re.split(r"\n\s*\n", open(path).read()):
        f = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[0].isspace():
                continue
            k, v = line.split(":", 1)
            f[k.strip().lower()] = v.split()
        if "deb" in f.get("types", []) and f.get("uris") and f.get("enabled", ["yes"])[0] != "no":
            take(f["uris"][0], f.get("suites", []))
for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        w = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
        if len(w) >= 3 and w[0] == "deb" and "debian" in w[1]:
            take(w[1], [w[2]])
print(main or "", sec or "")
EOF
}

# ---------------------------------------------------------------------------------------------------
# Mounts and temporary dirs, always cleaned up (also on error or interrupt).
MOUNTS=()
TMPS=()
cleanup() {
	local i m
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
		m=${MOUNTS[i]}
		if mountpoint -q "$m" 2>/dev/null; then
			umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "warning: cannot unmount $m"
		fi
	done
	MOUNTS=()
	for m in "${TMPS[@]}"; do safe_rm "$m"; done
	TMPS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# rm -rf that refuses to descend into anything still mounted below the dir.
safe_rm() {
	local dir=$1 m
	[ -e "$dir" ] || return 0
	dir=$(readlink -f "$dir")
	while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	done < <(awk -v d="$dir/" 'index($5 "/", d) == 1 && $5 != d { print $5 }' /proc/self/mountinfo | sort -r)
	if awk -v d="$dir/" 'index($5 "/", d) == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; then
		log "warning: $dir still has mounts below it; not removing it"
		return 0
	fi
	rm -rf --one-file-system "$dir"
}

mount_into() { # mount_into ROOTFS: /proc and the apt archive cache of this image
	local root=$1 archives=$2
	mkdir -p "$root/proc" "$archives" "$root/var/cache/apt/archives"
	mount -t proc proc "$root/proc"
	MOUNTS+=("$root/proc")
	mount --bind "$archives" "$root/var/cache/apt/archives"
	MOUNTS+=("$root/var/cache/apt/archives")
}
unmount_all() {
	local i
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
		mountpoint -q "${MOUNTS[i]}" || continue
		umount "${MOUNTS[i]}" || umount -l "${MOUNTS[i]}"
	done
	MOUNTS=()
}

in_chroot() { # in_chroot ROOTFS CMD...
	local root=$1
	shift
	chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 \
		DEBIAN_FRONTEND=noninteractive "$@"
}

# ---------------------------------------------------------------------------------------------------
# Cache keys.
sha() { sha256sum | cut -c1-16; }
SCRIPT_KEY=$(cat "$HERE/build.sh" "$HERE/mkoci.py" "$HERE/dockerfile.py" "$HERE/images.env" | sha256sum | cut -d' ' -f1)
base_key() { printf 'base %s %s %s\n' "$SCRIPT_KEY" "$SUITE" "$BASE_INCLUDE" | sha; }
monaco_tree_key() { # the working tree of the monaco distribution (tracked or not)
	(
		cd "$REPO"
		{
			find core api operator cli -type f \
				! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info/*' ! -path '*/bin/*' 2>/dev/null
			[ -f pyproject.toml ] && echo pyproject.toml
			[ -f setup.py ] && echo setup.py
			[ -f Dockerfile ] && echo Dockerfile # the image's settings and RUN step (dockerfile.py)
		} | LC_ALL=C sort | while IFS= read -r f; do
			printf '%s\0' "$f"
			sha256sum <"$f"
		done
	) | sha
}
image_key() { # image_key NAME
	local name=$1 extra=""
	[ "$name" = pause ] && extra=$(sha256sum <"$HERE/pause.c")
	[ "$name" = monaco ] && extra=$(monaco_tree_key)
	printf 'image %s %s %s %s %s %s %s\n' "$SCRIPT_KEY" "$SUITE" "$name" "${REF[$name]}" \
		"${PKGS[$name]:-}" "$(base_key)" "$extra" | sha
}

# ---------------------------------------------------------------------------------------------------
# The minbase rootfs, built once and cached as a tar (with apt lists, so images need no apt update).
BASE_TAR=""
build_base() {
	local key out tmp mirror security
	key=$(base_key)
	out=$CACHE/base/$SUITE-minbase-$key.tar
	BASE_TAR=$out
	[ -f "$out" ] && return 0
	read -r mirror security < <(read_mirrors)
	[ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list*"
	log "base: debootstrap --variant=minbase $SUITE from the host's mirror"
	mkdir -p "$CACHE/base"
	tmp=$(mktemp -d "$CACHE/base/.tmp.XXXXXX")
	TMPS+=("$tmp")
	debootstrap --variant=minbase --include="$BASE_INCLUDE" "$SUITE" "$tmp/rootfs" "$mirror" \
		>"$tmp/debootstrap.log" 2>&1 || {
		tail -n 30 "$tmp/debootstrap.log" >&2
		die "debootstrap failed"
	}
	local root=$tmp/rootfs
	{
		echo "deb $mirror $SUITE main"
		echo "deb $mirror $SUITE-updates main"
		[ -n "$security" ] && echo "deb $security $SUITE-security main"
	} >"$root/etc/apt/sources.list"
	# Images are never booted: no daemons started by maintainer scripts, no docs, no recommends.
	printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
	chmod 755 "$root/usr/sbin/policy-rc.d"
	cat >"$root/etc/dpkg/dpkg.cfg.d/01-monaco-nodoc" <<'EOF'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
EOF
	cat >"$root/etc/apt/apt.conf.d/01-monaco" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Retries "5";
Dpkg::Use-Pty "false";
EOF
	cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
	mount_into "$root" "$CACHE/apt-archives/base"
	in_chroot "$root" apt-get update -qq
	in_chroot "$root" apt-get -y -qq dist-upgrade >/dev/null
	in_chroot "$root" apt-get clean
	unmount_all
	tar -C "$root" --numeric-owner --xattrs -cf "$tmp/base.tar" .
	mv "$tmp/base.tar" "$out"
	safe_rm "$tmp"
	find "$CACHE/base" -maxdepth 1 -name "$SUITE-minbase-*.tar" ! -name "$(basename "$out")" -delete
	log "base: $(du -h "$out" | cut -f1) $out"
}

# ---------------------------------------------------------------------------------------------------
# What every Debian-derived image strips before packing.
strip_rootfs() {
	local root=$1
	rm -f "$root/usr/sbin/policy-rc.d" "$root/etc/resolv.conf" "$root/etc/hostname"
	rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/debconf/*-old \
		"$root"/var/lib/dpkg/*-old "$root"/usr/share/man/* "$root"/usr/share/info/* \
		"$root"/usr/share/lintian "$root"/tmp/* "$root"/var/tmp/* "$root"/root/.cache
	find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete 2>/dev/null || true
	find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
	find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
	find "$root/var/log" -type f -delete
	: >"$root/etc/machine-id" 2>/dev/null || true
	chmod 1777 "$root/tmp" "$root/var/tmp"
}

# Excluded from every layer: the runtime provides /proc, /sys and /dev.
EXCLUDES=(--exclude 'proc/*' --exclude 'sys/*' --exclude 'dev/*' --exclude 'var/cache/apt/archives/*'
	--exclude 'run/*')

pack() { # pack NAME ROOTFS OUT [mkoci args...]
	local name=$1 root=$2 out=$3
	shift 3
	$PY "$HERE/mkoci.py" "$root" "$out.part" --name "${REF[$name]}" --level "$GZIP_LEVEL" \
		"${EXCLUDES[@]}" "$@" >"$out.json.part" || {
		rm -f "$out.part" "$out.json.part"
		die "$name: mkoci.py failed"
	}
	mv "$out.json.part" "$out.json"
	mv "$out.part" "$out"
}

publish() { # point CACHE/NAME.tar at the new build and drop older builds of NAME
	local name=$1 out=$2
	ln -sfn "oci/$(basename "$out")" "$CACHE/$name.tar.new" && mv -T "$CACHE/$name.tar.new" "$CACHE/$name.tar"
	ln -sfn "oci/$(basename "$out").json" "$CACHE/$name.json.new" && mv -T "$CACHE/$name.json.new" "$CACHE/$name.json"
	find "$CACHE/oci" -maxdepth 1 -name "$name-*.tar*" ! -name "$(basename "$out")" ! -name "$(basename "$out").json" -delete
}

# ---------------------------------------------------------------------------------------------------
build_pause() {
	local out=$1 tmp
	tmp=$(mktemp -d "$CACHE/oci/.tmp.pause.XXXXXX")
	TMPS+=("$tmp")
	mkdir -p "$tmp/rootfs"
	gcc -static -Os -Wall -Wextra -Werror -DVERSION='"monaco-3.9"' -o "$tmp/rootfs/pause" "$HERE/pause.c"
	strip "$tmp/rootfs/pause"
	chmod 755 "$tmp/rootfs/pause"
	# The upstream pause image runs as 65535; a fixed mtime makes this image bit-for-bit reproducible.
	pack pause "$tmp/rootfs" "$out" --entrypoint '["/pause"]' --user 65535:65535 --mtime 0
}

# A rootfs of the base with the image's packages installed; left mounted (/proc, apt archives).
prepare_rootfs() { # prepare_rootfs NAME ROOT TMP
	local name=$1 root=$2 tmp=$3
	mkdir -p "$root"
	tar -C "$root" --numeric-owner --xattrs -xpf "$BASE_TAR"
	cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
	mount_into "$root" "$CACHE/apt-archives/$name"
	# shellcheck disable=SC2086
	if ! in_chroot "$root" apt-get install -y -qq ${PKGS[$name]} >"$tmp/apt.log" 2>&1; then
		log "$name: apt-get install failed; refreshing the package lists and retrying"
		in_chroot "$root" apt-get update -qq
		# shellcheck disable=SC2086
		in_chroot "$root" apt-get install -y -qq ${PKGS[$name]} >"$tmp/apt.log" 2>&1 || {
			tail -n 30 "$tmp/apt.log" >&2
			die "$name: apt-get install ${PKGS[$name]} failed"
		}
	fi
}

build_debian() { # build_debian NAME OUT: base + packages + the image's own step
	local name=$1 out=$2 tmp root
	tmp=$(mktemp -d "$CACHE/oci/.tmp.$name.XXXXXX")
	TMPS+=("$tmp")
	root=$tmp/rootfs
	local -a cfg=()
	if [ "$name" = monaco ]; then
		monaco_rootfs "$root" "$tmp"
	else
		prepare_rootfs "$name" "$root" "$tmp"
		"post_$name" "$root" "$tmp"
	fi
	unmount_all
	strip_rootfs "$root"
	pack "$name" "$root" "$out" "${cfg[@]}"
	safe_rm "$tmp"
}

# Each post_NAME runs with /proc mounted in the chroot and fills cfg (mkoci.py arguments).
LANG_ENV=(--env LANG=C.UTF-8 --cmd '["/bin/sh"]')
post_python() {
	in_chroot "$1" python3 -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version'
	cfg=("${LANG_ENV[@]}")
}
post_java() {
	in_chroot "$1" sh -c 'javac -version && java -version' >/dev/null 2>&1 || die "java: no javac/java"
	cfg=("${LANG_ENV[@]}" --env JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64)
}
post_gcc() {
	in_chroot "$1" sh -c 'gcc --version && g++ --version' >/dev/null || die "gcc: no gcc/g++"
	cfg=("${LANG_ENV[@]}")
}
post_node() {
	in_chroot "$1" node -e 'process.exit(0)' || die "node: nodejs does not start"
	cfg=("${LANG_ENV[@]}")
}

# The api/operator image: Debian's python3, the dependencies of the monaco distribution (resolved from
# pyproject.toml) and a wheel of the working tree, whose build compiles Monaco's native binaries here on
# the host (nsrun against the host's glibc, the same Debian suite; monaco-init static). Two stages: the rootfs with python3 and the
# dependencies is cached as a tar keyed by the dependency list, so a code change only rebuilds the
# wheel and repacks (seconds), and a dependency change reinstalls them.
MANYLINUX=(--platform manylinux2014_x86_64)
for v in $(seq 17 36); do MANYLINUX+=(--platform "manylinux_2_${v}_x86_64"); done # bookworm: glibc 2.36
pip_target() { # pip_target ROOT TMP LOG ARGS...: pip install cp311 manylinux wheels into ROOT/opt/monaco/site
	local root=$1 tmp=$2 logf=$3
	shift 3
	# pip runs from the temp dir and with -I: the repo root must never be on sys.path.
	(cd "$tmp" && $PY -m pip install -q --no-compile --target "$root/opt/monaco/site" --python-version 3.11 \
		--implementation cp --only-binary=:all: "${MANYLINUX[@]}" "$@") >"$logf" 2>&1 || {
		tail -n 30 "$logf" >&2
		die "monaco: pip install $* failed"
	}
	rm -rf "$root/opt/monaco/site/bin"
}
monaco_deps() { # the dependency list of pyproject.toml, one per line
	$PY -c 'import sys, tomllib; print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))' \
		"$REPO/pyproject.toml"
}
monaco_rootfs() { # monaco_rootfs ROOT TMP: fills cfg
	local root=$1 tmp=$2 src=$2/src deps key deps_tar
	deps=$(monaco_deps) || die "monaco: cannot read the dependencies from $REPO/pyproject.toml"
	key=$(printf '%s\n' "$SCRIPT_KEY" "$(base_key)" "${PKGS[monaco]}" "$deps" | sha)
	deps_tar=$CACHE/base/monaco-deps-$key.tar
	if [ -f "$deps_tar" ]; then
		mkdir -p "$root"
		tar -C "$root" --numeric-owner --xattrs -xpf "$deps_tar"
		mkdir -p "$root/proc"
		mount -t proc proc "$root/proc"
		MOUNTS+=("$root/proc")
	else
		log "monaco: installing python3 and the dependencies ($(echo "$deps" | wc -l) requirements)"
		prepare_rootfs monaco "$root" "$tmp"
		mapfile -t reqs <<<"$deps"
		pip_target "$root" "$tmp" "$tmp/pip-deps.log" "${reqs[@]}"
		# Byte-compile with the image's own interpreter (the timestamps stay valid: mkoci.py keeps mtimes).
		in_chroot "$root" python3 -m compileall -q -j0 /opt/monaco/site >/dev/null
		in_chroot "$root" env PYTHONPATH=/opt/monaco/site python3 -c \
			'import starlette, uvicorn, kopf, kubernetes, pydantic, pydantic_settings, prometheus_client, yaml' ||
			die "monaco: the dependencies do not import"
		umount "$root/var/cache/apt/archives"
		strip_rootfs "$root"
		tar -C "$root" --numeric-owner --xattrs --one-file-system --exclude='./proc/*' -cf "$tmp/deps.tar" .
		mv "$tmp/deps.tar" "$deps_tar"
		find "$CACHE/base" -maxdepth 1 -name 'monaco-deps-*.tar' ! -name "$(basename "$deps_tar")" -delete
	fi
	mkdir -p "$src" "$tmp/wheel"
	# shellcheck disable=SC2046
	(cd "$REPO" && tar -cf - --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' \
		--exclude=core/bin --exclude=api/local/bin \
		pyproject.toml core api operator cli $(ls setup.py README* LICENSE* 2>/dev/null)) | tar -C "$src" -xf -
	# pyproject.toml names README.md as the long description; a tree without one still builds.
	[ -e "$src/README.md" ] || echo "Monaco" >"$src/README.md"
	log "monaco: building the wheel of $REPO"
	(cd "$tmp" && $PY -m pip wheel -q --no-deps -w "$tmp/wheel" "$src") >"$tmp/wheel.log" 2>&1 || {
		tail -n 30 "$tmp/wheel.log" >&2
		die "monaco: pip wheel failed"
	}
	# The wheel carries native code: tagged py3-none-linux_<arch>, not manylinux.
	pip_target "$root" "$tmp" "$tmp/pip.log" --no-deps --platform "linux_$(uname -m)" "$tmp"/wheel/*.whl
	in_chroot "$root" python3 -m compileall -q /opt/monaco/site/monaco >/dev/null
	local native
	for native in api/local/nsrun core/monaco-init; do
		[ -f "$REPO/$native.c" ] || continue
		in_chroot "$root" test -x "/opt/monaco/site/monaco/$(dirname "$native")/bin/$(basename "$native")" ||
			die "monaco: the image lacks the native binary $(basename "$native")"
	done
	if [ -f "$REPO/core/__init__.py" ]; then
		in_chroot "$root" env PYTHONPATH=/opt/monaco/site python3 -c 'import monaco.core' ||
			die "monaco: 'import monaco.core' fails in the image"
	fi
	if [ -f "$REPO/cli/__init__.py" ]; then
		in_chroot "$root" env PYTHONPATH=/opt/monaco/site python3 -c 'import monaco.cli' ||
			die "monaco: 'import monaco.cli' fails in the image"
	fi
	# The Dockerfile's `monaco` stage is the definition: its RUN steps (the user, the data dir) run here,
	# its settings become the image's config. Only where the files are differs: Debian's python3 finds
	# Monaco in /opt/monaco/site (PYTHONPATH), the Dockerfile's in /usr/local.
	local version step
	version=$($PY -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' \
		"$REPO/pyproject.toml")
	while IFS= read -r step; do
		in_chroot "$root" /bin/sh -ec "$step" || die "monaco: the Dockerfile's RUN step failed: $step"
	done < <($PY "$HERE/dockerfile.py" "$REPO/Dockerfile" monaco --run)
	mapfile -t cfg < <($PY "$HERE/dockerfile.py" "$REPO/Dockerfile" monaco --version "$version")
	[ ${#cfg[@]} -gt 0 ] || die "monaco: no settings read from $REPO/Dockerfile"
	cfg+=(--env LANG=C.UTF-8 --env PYTHONPATH=/opt/monaco/site)
}

# ---------------------------------------------------------------------------------------------------
build_one() { # build_one NAME: build unless cached; prints "NAME REF PATH"
	local name=$1 key out t0
	key=$(image_key "$name")
	out=$CACHE/oci/$name-$key.tar
	if [ ! -f "$out" ] || [ ! -f "$out.json" ]; then
		t0=$(date +%s)
		log "$name: building ${REF[$name]} (key $key)"
		if [ "$name" = pause ]; then build_pause "$out"; else build_debian "$name" "$out"; fi
		log "$name: built in $(($(date +%s) - t0))s, $(du -h "$out" | cut -f1)"
	fi
	publish "$name" "$out"
	printf '%s %s %s\n' "$name" "${REF[$name]}" "$out"
}

main() {
	local targets=() t
	if [ "${1:-}" = __one ]; then # internal: one image, run by the parallel driver below
		[ -n "${MONACO_IMAGES_LOCKED:-}" ] || die "__one is internal"
		BASE_TAR=$2
		build_one "$3"
		return
	fi
	[ $# = 0 ] && set -- all
	for t in "$@"; do
		case $t in
		all) targets+=("${ALL_IMAGES[@]}") ;;
		base | pause | python | java | gcc | node | monaco) targets+=("$t") ;;
		*) die "unknown image '$t' (all|base|$(IFS='|'; echo "${ALL_IMAGES[*]}"))" ;;
		esac
	done
	mkdir -p "$CACHE/oci" "$CACHE/base" "$CACHE/apt-archives"
	exec 9>"$CACHE/.lock"
	flock -w 3600 9 || die "another build.sh holds $CACHE/.lock"
	ensure_host_tools
	local need_base=0
	for t in "${targets[@]}"; do [ "$t" != pause ] && need_base=1; done
	[ $need_base = 1 ] && build_base
	# Images build in separate processes (each with its own mounts, temp dirs and EXIT trap), JOBS at
	# a time: one image's apt downloads overlap another's packing. A TERM/INT here is passed on to them.
	local todo=() n rc=0 running
	declare -gA NAME_OF=() RC=()
	for t in "${targets[@]}"; do
		[ "$t" = base ] && { echo "base - $BASE_TAR"; continue; }
		todo+=("$t")
	done
	trap 'kill -TERM "${!NAME_OF[@]}" 2>/dev/null; wait; rm -f "$CACHE"/oci/.out.*; exit 130' INT TERM
	for t in "${todo[@]}"; do
		while running=$((${#NAME_OF[@]} - ${#RC[@]})) && [ "$running" -ge "$JOBS" ]; do reap_one; done
		MONACO_IMAGES_LOCKED=1 "$BASH" "$HERE/build.sh" __one "$BASE_TAR" "$t" >"$CACHE/oci/.out.$t" &
		NAME_OF[$!]=$t
	done
	while [ "${#RC[@]}" -lt "${#NAME_OF[@]}" ]; do reap_one || break; done
	trap 'exit 130' INT TERM
	for n in "${todo[@]}"; do
		if [ "${RC[$n]:-1}" = 0 ]; then
			cat "$CACHE/oci/.out.$n"
		else
			rc=1
			log "$n: FAILED"
		fi
		rm -f "$CACHE/oci/.out.$n"
	done
	return $rc
}

reap_one() { # wait for any one child image build and record its exit status
	local pid="" r=0
	wait -n -p pid || r=$?
	[ -n "$pid" ] || return 1
	RC[${NAME_OF[$pid]}]=$r
}

main "$@"
