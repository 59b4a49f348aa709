#!/usr/bin/env bash
# Import the images that build.sh made into containerd's k8s.io namespace, unpacked for the snapshotter
# the CRI plugin uses, so the kubelet never needs to pull. Idempotent: an image whose manifest digest
# is already there and unpacked is left alone.
#
#   e2e/images/import.sh SOCKET [pause|python|java|gcc|node|monaco]...   (default: all of them)
#
# Environment: MONACO_E2E_CACHE (as build.sh), CONTAINERD_SNAPSHOTTER (default overlayfs), CTR (the
# ctr binary, default ctr from PATH).
set -euo pipefail

CACHE=${MONACO_E2E_CACHE:-/var/cache/monaco-e2e}/images
SNAPSHOTTER=${CONTAINERD_SNAPSHOTTER:-overlayfs}
CTR=${CTR:-ctr}
ALL_IMAGES=(pause python java gcc node monaco)

log() { printf '[import %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ $# -ge 1 ] || die "usage: import.sh SOCKET [${ALL_IMAGES[*]}]"
SOCK=$1
shift
[ $# = 0 ] && set -- "${ALL_IMAGES[@]}"
[ -S "$SOCK" ] || die "$SOCK is not a socket"

ctr_() { "$CTR" --address "$SOCK" --namespace k8s.io "$@"; }

field() { # field JSON-FILE KEY
	/usr/bin/python3 -I -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

present() { # present REF MANIFEST-DIGEST DIFF-ID: image there with that digest, and unpacked
	local digest
	digest=$(ctr_ images ls "name==$1" 2>/dev/null | awk -v r="$1" '$1 == r { print $3 }')
	[ "$digest" = "$2" ] && ctr_ snapshots --snapshotter "$SNAPSHOTTER" info "$3" >/dev/null 2>&1
}

for name in "$@"; do
	case $name in pause | python | java | gcc | node | monaco) ;; *) die "unknown image '$name'" ;; esac
	tarball=$CACHE/$name.tar
	json=$CACHE/$name.json
	if [ ! -f "$tarball" ] || [ ! -f "$json" ]; then die "$name is not built: run e2e/images/build.sh $name"; fi
	ref=$(field "$json" name)
	manifest=$(field "$json" manifest)
	# One layer, so the layer's chain ID (the snapshot's name) is its diff ID.
	diff_id=$(field "$json" diff_id)
	if present "$ref" "$manifest" "$diff_id"; then
		log "$ref: already imported ($manifest)"
	else
		t0=$(date +%s)
		ctr_ images import --platform linux/amd64 --snapshotter "$SNAPSHOTTER" "$(readlink -f "$tarball")" >/dev/null
		present "$ref" "$manifest" "$diff_id" || die "$ref: imported, but not found unpacked for $SNAPSHOTTER"
		log "$ref: imported in $(($(date +%s) - t0))s ($manifest)"
	fi
	# Images CRI did not pull: mark them as CRI-managed, and pin the sandbox image against image GC
	# (containerd 1.7+ honours the pin; 1.6 ignores both labels harmlessly).
	labels=(io.cri-containerd.image=managed)
	[ "$name" = pause ] && labels+=(io.cri-containerd.pinned=pinned)
	ctr_ images label "$ref" "${labels[@]}" >/dev/null
done
