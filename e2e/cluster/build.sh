#!/usr/bin/env bash
# Build (or reuse from the cache) the binaries of the local e2e cluster:
#   Kubernetes components + kubectl, Helm, kube-router (NetworkPolicy firewall).
# Idempotent: each artifact set lives in ${MONACO_E2E_CACHE}/<name>-<version>/bin and is
# only built when its ".done" stamp is missing.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"

build_k8s() {
  local dir="$CACHE/k8s-$K8S_VERSION" mod bin
  bin="$dir/bin"
  if [[ -f "$dir/.done" ]]; then log "kubernetes $K8S_VERSION: cached in $bin"; return; fi
  log "kubernetes $K8S_VERSION: building (first run only, takes a while on 2 cores)"
  local t0=$SECONDS
  mod="$dir/mod"
  rm -rf "$mod" "$bin"; mkdir -p "$mod" "$bin"
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | /usr/bin/python3 -I -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')"
  local minor="${K8S_VERSION#v1.}"; local stagever="v0.${minor}"
  # k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces the k8s.io/* staging
  # modules with local folders that are not in the module zip. Build it from a throwaway module
  # that requires the same versions and replaces each staging module with its published v0.X.
  /usr/bin/python3 -I - "$gomod" "$mod/go.mod" "$K8S_VERSION" "$stagever" <<'PY'
import re, sys
src, dst, kver, sver = sys.argv[1:]
text = open(src).read()
staging = re.findall(r'^\s*(k8s\.io/[\w.-]+) => \./staging/', text, re.M)
reqs = []
for block in re.findall(r'^require \((.*?)^\)', text, re.M | re.S):
    for line in block.splitlines():
        line = line.split('//')[0].strip()
        if not line:
            continue
        path, ver = line.split()[:2]
        if path in staging:
            ver = sver
        reqs.append(f"\t{path} {ver}")
out = ["module monaco.local/k8sbuild", "", "go 1.20", "",
       "require (", f"\tk8s.io/kubernetes {kver}", *reqs, ")", "", "replace ("]
out += [f"\t{p} => {p} {sver}" for p in staging]
out += [")", ""]
open(dst, "w").write("\n".join(out))
PY
  local pkgs=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
              k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet
              k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl)
  local major=1 minorn="${minor%%.*}" date ld=""
  date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minorn"
    ld+=" -X $p.gitCommit=$K8S_GIT_COMMIT -X $p.gitTreeState=clean -X $p.buildDate=$date"
  done
  (cd "$mod" && GOFLAGS=-mod=mod GOTOOLCHAIN="${K8S_GOTOOLCHAIN:-local}" go mod download &&
     GOFLAGS=-mod=mod GOTOOLCHAIN="${K8S_GOTOOLCHAIN:-local}" CGO_ENABLED=0 \
     go build -trimpath -tags notest -ldflags "-s -w$ld" -o "$bin/" "${pkgs[@]}")
  touch "$dir/.done"
  log "kubernetes $K8S_VERSION: built in $((SECONDS - t0)) s"
}

build_helm() {
  local dir="$CACHE/helm-$HELM_VERSION"
  if [[ -f "$dir/.done" ]]; then log "helm $HELM_VERSION: cached"; return; fi
  local t0=$SECONDS
  mkdir -p "$dir/bin"
  CGO_ENABLED=0 GOBIN="$dir/bin" GOTOOLCHAIN="${HELM_GOTOOLCHAIN:-local}" GOFLAGS="" \
    go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  touch "$dir/.done"
  log "helm $HELM_VERSION: built in $((SECONDS - t0)) s"
}

build_kube_router() {
  local dir="$CACHE/kube-router-$KUBE_ROUTER_VERSION"
  if [[ -f "$dir/.done" ]]; then log "kube-router $KUBE_ROUTER_VERSION: cached"; return; fi
  local t0=$SECONDS
  mkdir -p "$dir/bin"
  CGO_ENABLED=0 GOBIN="$dir/bin" GOTOOLCHAIN="${KUBE_ROUTER_GOTOOLCHAIN:-local}" GOFLAGS="" \
    go install -trimpath -ldflags "-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION" \
    "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION"
  touch "$dir/.done"
  log "kube-router $KUBE_ROUTER_VERSION: built in $((SECONDS - t0)) s"
}

main() {
  mkdir -p "$CACHE"
  case "${1:-all}" in
    k8s) build_k8s ;;
    helm) build_helm ;;
    kube-router) build_kube_router ;;
    all) build_k8s; build_helm; build_kube_router ;;
    *) die "usage: $0 [all|k8s|helm|kube-router]" ;;
  esac
}
main "$@"
