#!/usr/bin/env bash
# Bring up a real single-node Kubernetes cluster inside network namespace monaco-e2e.
# Usage: e2e/cluster/up.sh        (run as root; see README.md)
# On success prints `export PATH=...; export KUBECONFIG=...` and writes $STATE/env.sh.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"

T0=$SECONDS
[[ $(id -u) == 0 ]] || die "must run as root"

# One cluster per machine. A live one (processes in its netns) may be someone else's e2e run:
# refuse rather than pull it from under them. A dead leftover (or a failed up) is torn down.
if [[ -e $NETNS_PATH && -n "$(ip netns pids "$NETNS" 2>/dev/null)" && -z ${MONACO_E2E_REPLACE:-} ]]; then
  log "a cluster is already running in netns $NETNS (state $STATE)."
  log "use it (e2e/cluster/run-in-cluster.sh ...), stop it with e2e/cluster/down.sh, or set MONACO_E2E_REPLACE=1"
  exit 3
fi
"$HERE/down.sh" --quiet
# A failed up tears down what it started (logs stay in $STATE/logs), unless asked to keep it.
on_exit() {
  local rc=$?
  ((rc == 0)) && return
  log "up failed (exit $rc); daemon logs: $STATE/logs"
  [[ -n ${MONACO_E2E_KEEP_ON_FAILURE:-} ]] || "$HERE/down.sh" --quiet
}
trap on_exit EXIT

install_packages
"$HERE/build.sh" all

IMAGES_DIR="$REPO_ROOT/e2e/images"
# image tags (PAUSE_IMAGE is containerd's sandbox_image) come from the image helper's file
# shellcheck disable=SC1091
[[ -f $IMAGES_DIR/images.env ]] && source "$IMAGES_DIR/images.env"
[[ -n ${PAUSE_IMAGE:-} ]] || die "PAUSE_IMAGE is not set (e2e/images/images.env)"
if [[ -x $IMAGES_DIR/build.sh && -z ${MONACO_E2E_SKIP_IMAGE_BUILD:-} ]]; then
  log "building images (cached) with e2e/images/build.sh"
  # shellcheck disable=SC2086
  "$IMAGES_DIR/build.sh" ${MONACO_E2E_IMAGES:-}
fi

# --- state dir, tools ----------------------------------------------------------------------
# Everything but containerd's image store is made anew. The image store (content + unpacked
# snapshots, no containers: down.sh deletes them all) is kept between cycles, so importing the
# images is a no-op after the first up; MONACO_E2E_FRESH_IMAGES=1 or `down.sh --purge` drops it.
if [[ -d $STATE ]]; then
  [[ -n ${MONACO_E2E_FRESH_IMAGES:-} ]] && rm -rf "$STATE/containerd/root"
  find "$STATE" -mindepth 1 -maxdepth 1 ! -name containerd -exec rm -rf {} +
  find "$STATE/containerd" -mindepth 1 -maxdepth 1 ! -name root -exec rm -rf {} +
fi
mkdir -p "$STATE"/{bin,logs,pids,etcd,cni/net.d,cni/ipam,containerd,kubelet,kube-proxy}
ln -sf "$K8S_BIN/kubectl" "$STATE/bin/kubectl"
ln -sf "$HELM_BIN/helm" "$STATE/bin/helm"
ln -sf /usr/bin/ctr "$STATE/bin/ctr"
for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do ln -sf "$K8S_BIN/$b" "$STATE/bin/$b"; done

# down.sh removes the kubelet's leftovers outside the state dir (e.g. /var/log/pods) newer than this
touch "$STATE/.up-started"

# --- network namespace ---------------------------------------------------------------------
log "creating netns $NETNS"
ip netns add "$NETNS"
in_ns ip link set lo up
# The node address lives on one end of a veth pair whose both ends stay inside the netns
# (this kernel has no `dummy` interface). A default route makes Service cluster IPs routable
# from the node itself; no packet can leave the namespace: nothing else is attached to it.
in_ns ip link add "$VETH_NODE" type veth peer name "$VETH_PEER"
in_ns ip addr add "$NODE_IP/$NODE_CIDR_PREFIX" dev "$VETH_NODE"
in_ns ip addr add "$NODE_PEER_IP/$NODE_CIDR_PREFIX" dev "$VETH_PEER"
in_ns ip link set "$VETH_NODE" up
in_ns ip link set "$VETH_PEER" up
in_ns ip route add default via "$NODE_PEER_IP" dev "$VETH_NODE"
in_ns sysctl -qw net.ipv4.ip_forward=1
in_ns sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || log "warning: could not set bridge-nf-call-iptables in netns"
in_ns sysctl -qw net.bridge.bridge-nf-call-ip6tables=1 2>/dev/null || true
in_ns sysctl -qw net.ipv4.conf.all.route_localnet=1 || true

# --- PKI and kubeconfigs -------------------------------------------------------------------
log "generating certificates"
gen_pki
PKI="$STATE/pki"

# --- etcd ----------------------------------------------------------------------------------
start_daemon etcd /usr/bin/etcd --name monaco-e2e --data-dir "$STATE/etcd" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster monaco-e2e=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 \
  --quota-backend-bytes 2147483648 --snapshot-count 10000 --log-level warn
wait_daemon etcd 60 in_ns /usr/bin/etcdctl --endpoints http://127.0.0.1:2379 endpoint health

# --- kube-apiserver ------------------------------------------------------------------------
start_daemon kube-apiserver "$K8S_BIN/kube-apiserver" \
  --etcd-servers=http://127.0.0.1:2379 \
  --bind-address=0.0.0.0 --secure-port=6443 --advertise-address="$NODE_IP" \
  --service-cluster-ip-range="$SERVICE_CIDR" --service-node-port-range=30000-32767 \
  --client-ca-file="$PKI/ca.crt" --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
  --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority="$PKI/ca.crt" --kubelet-preferred-address-types=InternalIP \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --allow-privileged=true --profiling=false --endpoint-reconciler-type=lease \
  --storage-backend=etcd3 --v=1
wait_daemon kube-apiserver 120 kubectl_admin get --raw /readyz

# --- controller-manager, scheduler ---------------------------------------------------------
start_daemon kube-controller-manager "$K8S_BIN/kube-controller-manager" \
  --kubeconfig="$STATE/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$STATE/controller-manager.kubeconfig" \
  --authorization-kubeconfig="$STATE/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --leader-elect=false --controllers='*' \
  --use-service-account-credentials=true \
  --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
  --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
  --allocate-node-cidrs=true --cluster-cidr="$CLUSTER_CIDR" --node-cidr-mask-size=24 \
  --service-cluster-ip-range="$SERVICE_CIDR" --v=1
start_daemon kube-scheduler "$K8S_BIN/kube-scheduler" \
  --kubeconfig="$STATE/scheduler.kubeconfig" \
  --authentication-kubeconfig="$STATE/scheduler.kubeconfig" \
  --authorization-kubeconfig="$STATE/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --leader-elect=false --v=1

# --- containerd ----------------------------------------------------------------------------
CTRD="$STATE/containerd"
CTRD_SOCK="$CTRD/containerd.sock"
cat >"$CTRD/config.toml" <<EOF
version = 2
root = "$CTRD/root"
state = "$CTRD/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$CTRD_SOCK"
[ttrpc]
  address = "$CTRD/containerd-ttrpc.sock"
[debug]
  address = "$CTRD/debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$CTRD/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  enable_selinux = false
  # this machine's root lacks CAP_SYS_RESOURCE, so nothing may lower oom_score_adj below our own
  # (runc would fail the pause container with "failed to update /proc/self/oom_score_adj")
  restrict_oom_score_adj = true
  max_container_log_line_size = 16384
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    discard_unpacked_layers = false
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$CTRD/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$STATE/cni/bin"
    conf_dir = "$STATE/cni/net.d"
    max_conf_num = 1
EOF
start_daemon containerd /usr/bin/containerd --config "$CTRD/config.toml"
wait_daemon containerd 60 ctr -a "$CTRD_SOCK" version
# a kept image store holds no containers; drop any that an interrupted down.sh left behind
for c in $(ctr -a "$CTRD_SOCK" -n k8s.io containers ls -q); do
  ctr -a "$CTRD_SOCK" -n k8s.io tasks delete -f "$c" >/dev/null 2>&1 || true
  ctr -a "$CTRD_SOCK" -n k8s.io containers delete "$c" >/dev/null 2>&1 || true
done

# --- images (before the kubelet, so that nothing is ever pulled) ---------------------------
if [[ -n ${MONACO_E2E_SKIP_IMAGE_IMPORT:-} ]]; then
  log "MONACO_E2E_SKIP_IMAGE_IMPORT set: not importing e2e/images"
elif [[ -x $IMAGES_DIR/import.sh ]]; then
  log "importing images with e2e/images/import.sh ${MONACO_E2E_IMAGES:-(all)}"
  # shellcheck disable=SC2086
  CTR=/usr/bin/ctr "$IMAGES_DIR/import.sh" "$CTRD_SOCK" ${MONACO_E2E_IMAGES:-}
else
  log "warning: $IMAGES_DIR/import.sh not found; no images imported"
fi
for tar in ${MONACO_E2E_EXTRA_IMAGES:-}; do
  log "importing extra image $tar"
  ctr -a "$CTRD_SOCK" -n k8s.io images import --snapshotter overlayfs "$tar" >/dev/null
done
IMAGES_IN_CONTAINERD="$(ctr -a "$CTRD_SOCK" -n k8s.io images ls -q)"
grep -qxF "$PAUSE_IMAGE" <<<"$IMAGES_IN_CONTAINERD" ||
  die "pause image $PAUSE_IMAGE is not in containerd (sandbox_image); import it first"

# --- CNI -----------------------------------------------------------------------------------
# Debian's plugins plus monaco-quarantine (see cni-quarantine: new pods are cut off until
# kube-router enforces their NetworkPolicies; quarantine-release.sh lets them go)
mkdir -p "$STATE/cni/bin" "$STATE/cni/quarantine"
for p in bridge host-local portmap loopback; do ln -sf "$CNI_BIN_DIR/$p" "$STATE/cni/bin/$p"; done
install -m 0755 "$HERE/cni-quarantine" "$STATE/cni/bin/monaco-quarantine"
in_ns nft -f - <<'EOF'
table ip monaco {
  set quarantine { type ipv4_addr; }
  chain forward { type filter hook forward priority -5; policy accept; ip saddr @quarantine drop; ip daddr @quarantine drop; }
  chain input { type filter hook input priority -5; policy accept; ip saddr @quarantine drop; }
}
EOF
cat >"$STATE/cni/net.d/10-monaco.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "monaco",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$STATE/cni/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "monaco-quarantine", "stateDir": "$STATE/cni/quarantine"}
  ]
}
EOF

# --- kubelet -------------------------------------------------------------------------------
cat >"$STATE/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$PKI/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "$PKI/kubelet-serving.crt"
tlsPrivateKeyFile: "$PKI/kubelet-serving.key"
address: "$NODE_IP"
healthzBindAddress: 127.0.0.1
healthzPort: 10248
cgroupDriver: cgroupfs
containerRuntimeEndpoint: "unix://$CTRD_SOCK"
failSwapOn: false
podPidsLimit: ${MONACO_E2E_POD_PIDS_LIMIT:-1024}
maxPods: 110
podCIDR: "$POD_CIDR"
hairpinMode: hairpin-veth
resolvConf: "$STATE/kubelet/resolv.conf"
serializeImagePulls: false
imageMinimumGCAge: 87600h
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  nodefs.inodesFree: "1%"
  imagefs.available: "1%"
evictionPressureTransitionPeriod: 10s
registerNode: true
rotateCertificates: false
serverTLSBootstrap: false
protectKernelDefaults: false
makeIPTablesUtilChains: true
nodeStatusReportFrequency: 10s
nodeStatusUpdateFrequency: 5s
syncFrequency: 10s
fileCheckFrequency: 10s
volumeStatsAggPeriod: 1m
EOF
# no cluster DNS here: pods get an empty search/resolver configuration
echo "options ndots:1" >"$STATE/kubelet/resolv.conf"
start_daemon kubelet "$K8S_BIN/kubelet" \
  --config="$STATE/kubelet/config.yaml" --kubeconfig="$STATE/kubelet.kubeconfig" \
  --root-dir="$STATE/kubelet/root" --cert-dir="$STATE/kubelet/pki" \
  --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" \
  --pod-infra-container-image="$PAUSE_IMAGE" --v=1

# --- kube-proxy ----------------------------------------------------------------------------
cat >"$STATE/kube-proxy/config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$STATE/kube-proxy.kubeconfig"}
mode: iptables
clusterCIDR: "$CLUSTER_CIDR"
hostnameOverride: "$NODE_NAME"
bindAddress: 0.0.0.0
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  syncPeriod: 10s
  minSyncPeriod: 0s
EOF

# --- wait until the cluster is usable ------------------------------------------------------
wait_daemon kubelet 120 kubectl_admin get node "$NODE_NAME"

# kube-proxy and the NetworkPolicy enforcer (kube-router, firewall only) read the Node object
start_daemon kube-proxy "$K8S_BIN/kube-proxy" --config="$STATE/kube-proxy/config.yaml" --v=1
start_daemon kube-router "$KUBE_ROUTER_BIN/kube-router" \
  --kubeconfig="$STATE/kube-router.kubeconfig" --hostname-override="$NODE_NAME" \
  --run-firewall=true --run-router=false --run-service-proxy=false \
  --enable-cni=false --enable-ipv4=true --enable-ipv6=false \
  --health-port=0 --metrics-port=0 --iptables-sync-period=10s --v=1
start_daemon quarantine-release bash "$HERE/quarantine-release.sh"

wait_daemon kubelet 180 kubectl_admin wait --for=condition=Ready "node/$NODE_NAME" --timeout=5s
wait_daemon kube-controller-manager 120 kubectl_admin -n default get serviceaccount default
kube_svc_ok() { kubectl_admin --server="https://$KUBERNETES_SERVICE_IP:443" get --raw /readyz; }
wait_daemon kube-proxy 120 kube_svc_ok
for d in kube-scheduler kube-router quarantine-release; do daemon_alive "$d" || { tail -n 30 "$STATE/logs/$d.log" >&2; die "$d died"; }; done

# Marker: the e2e suite only runs against a cluster that carries it (or MONACO_E2E_ANY_CLUSTER=1)
kubectl_admin -n kube-system create configmap monaco-e2e-marker \
  --from-literal=state="$STATE" --from-literal=node="$NODE_NAME" \
  --from-literal=kubernetes="$K8S_VERSION" --from-literal=podPidsLimit="${MONACO_E2E_POD_PIDS_LIMIT:-1024}" >/dev/null

cat >"$STATE/env.sh" <<EOF
# source me: tools and kubeconfig of the local monaco-e2e cluster
export PATH="$STATE/bin:\$PATH"
export KUBECONFIG="$STATE/admin.kubeconfig"
export MONACO_E2E_STATE="$STATE"
export MONACO_E2E_NETNS="$NETNS"
export MONACO_E2E_CONTAINERD_SOCK="$CTRD_SOCK"
EOF
log "cluster up in $((SECONDS - T0)) s; node $NODE_NAME ($NODE_IP); run commands in it with e2e/cluster/run-in-cluster.sh CMD..."
echo "export PATH=\"$STATE/bin:\$PATH\""
echo "export KUBECONFIG=\"$STATE/admin.kubeconfig\""
