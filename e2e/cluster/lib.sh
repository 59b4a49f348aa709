# Common settings and helpers for the local e2e cluster scripts. Source it, don't run it.
# shellcheck disable=SC2034  # variables used by the scripts that source this file
# shellcheck shell=bash
CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$CLUSTER_DIR/../.." && pwd)"
# shellcheck source=versions.env
source "$CLUSTER_DIR/versions.env"

CACHE="${MONACO_E2E_CACHE:-/var/cache/monaco-e2e}"
STATE="${MONACO_E2E_STATE:-/var/lib/monaco-e2e}"
NETNS="${MONACO_E2E_NETNS:-monaco-e2e}"
NETNS_PATH="/run/netns/$NETNS"
NODE_NAME="${MONACO_E2E_NODE:-monaco-e2e-node}"
K8S_BIN="$CACHE/k8s-$K8S_VERSION/bin"
HELM_BIN="$CACHE/helm-$HELM_VERSION/bin"
KUBE_ROUTER_BIN="$CACHE/kube-router-$KUBE_ROUTER_VERSION/bin"
CNI_BIN_DIR="/usr/lib/cni"
# veth pair, both ends inside the netns: the node address lives on one end
VETH_NODE="monaco-node0"
VETH_PEER="monaco-peer0"
# iptables chains kube-proxy / kube-router / the CNI create live inside the netns, so
# deleting the netns removes them; ipsets however are per netns too (kernel >= 3.13).

export PATH="/usr/local/go/bin:$PATH:/usr/sbin:/sbin"

log() { printf '[monaco-e2e %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# in_ns CMD...: run CMD in the cluster's network namespace, sharing the host's mounts
in_ns() { nsenter --net="$NETNS_PATH" -- "$@"; }

# wait_for DESCRIPTION TIMEOUT_S CMD...: poll CMD until it succeeds, or fail after TIMEOUT_S
wait_for() {
  local what="$1" timeout="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then log "timed out after ${timeout}s waiting for: $what"; return 1; fi
    sleep 0.5
  done
  log "ready: $what"
}

# install_packages: apt-get install whatever of $APT_PACKAGES is missing. Services that the
# packages ship (etcd, containerd) are kept from starting: the cluster runs its own instances.
install_packages() {
  local missing=() p
  for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  log "installing Debian packages: ${missing[*]}"
  local policy=/usr/sbin/policy-rc.d ours=0
  if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; ours=1; fi
  local rc=0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } || rc=$?
  ((ours)) && rm -f "$policy"
  ((rc == 0)) || die "apt-get install failed"
  return 0
}

# --- PKI -------------------------------------------------------------------------------
# gen_cert NAME CN ORG SANS(comma list, "" for none) USAGE(client|server|both)
gen_cert() {
  local name="$1" cn="$2" org="$3" sans="$4" usage="$5" pki="$STATE/pki"
  local subj="/CN=$cn"; [[ -n $org ]] && subj="/O=$org$subj"
  local eku
  case "$usage" in client) eku=clientAuth ;; server) eku=serverAuth ;; *) eku=serverAuth,clientAuth ;; esac
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/$name.key" 2>/dev/null
  local ext="$pki/$name.ext"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [[ -n $sans ]] && echo "subjectAltName=$sans"
  } >"$ext"
  openssl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 30 -sha256 -extfile "$ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr" "$ext"
}

# gen_kubeconfig FILE CERTNAME SERVER
gen_kubeconfig() {
  local file="$1" cert="$2" server="$3" pki="$STATE/pki"
  cat >"$file" <<KC
apiVersion: v1
kind: Config
clusters:
- name: monaco-e2e
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 <"$pki/ca.crt")
users:
- name: $cert
  user:
    client-certificate-data: $(base64 -w0 <"$pki/$cert.crt")
    client-key-data: $(base64 -w0 <"$pki/$cert.key")
contexts:
- name: monaco-e2e
  context: {cluster: monaco-e2e, user: $cert}
current-context: monaco-e2e
KC
  chmod 600 "$file"
}

gen_pki() {
  local pki="$STATE/pki" node_dns="$NODE_NAME"
  mkdir -p "$pki"; chmod 700 "$pki"
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=monaco-e2e-ca" -days 30 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$pki/ca.crt" 2>/dev/null
  gen_cert apiserver kube-apiserver "" \
    "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:$NODE_IP,IP:$KUBERNETES_SERVICE_IP" server
  gen_cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters "" client
  gen_cert admin kubernetes-admin system:masters "" client
  gen_cert controller-manager system:kube-controller-manager "" "" client
  gen_cert scheduler system:kube-scheduler "" "" client
  gen_cert kubelet "system:node:$NODE_NAME" system:nodes "" client
  gen_cert kubelet-serving "$NODE_NAME" "" "DNS:$node_dns,IP:$NODE_IP,IP:127.0.0.1" server
  gen_cert kube-proxy system:kube-proxy "" "" client
  # the NetworkPolicy enforcer needs read access to pods/namespaces/policies cluster-wide
  gen_cert kube-router system:kube-router system:masters "" client
  # service-account token signing key pair
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/sa.key" 2>/dev/null
  openssl ec -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  local server="https://$NODE_IP:6443" c
  for c in admin controller-manager scheduler kubelet kube-proxy kube-router; do
    gen_kubeconfig "$STATE/$c.kubeconfig" "$c" "$server"
  done
}

# --- daemons ---------------------------------------------------------------------------
# start_daemon NAME CMD...: start CMD inside the netns, detached, logging to $STATE/logs/NAME.log
start_daemon() {
  local name="$1"; shift
  mkdir -p "$STATE/logs" "$STATE/pids"
  log "starting $name"
  setsid nsenter --net="$NETNS_PATH" -- "$@" >>"$STATE/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/pids/$name.pid"
}

daemon_alive() { local f="$STATE/pids/$1.pid"; [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null; }

# wait_daemon NAME TIMEOUT CMD...: like wait_for, but fail fast when the daemon died
wait_daemon() {
  local name="$1" timeout="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! daemon_alive "$name"; then log "$name exited; last log lines:"; tail -n 30 "$STATE/logs/$name.log" >&2; return 1; fi
    if ((SECONDS >= deadline)); then log "timed out after ${timeout}s waiting for $name"; tail -n 30 "$STATE/logs/$name.log" >&2; return 1; fi
    sleep 0.5
  done
  log "ready: $name"
}

kubectl_admin() { in_ns "$K8S_BIN/kubectl" --kubeconfig "$STATE/admin.kubeconfig" "$@"; }
