#!/usr/bin/env bash
# Tear down the local e2e cluster: processes, pod sandboxes, mounts, network namespaces
# (with their veths, iptables rules and ipsets) and cgroups. Safe to run twice, and after a
# failed or partial up.sh. Logs are kept in $STATE/logs for post-mortems.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"
QUIET=0 PURGE=0
for a in "$@"; do
  case "$a" in --quiet) QUIET=1 ;; --purge) PURGE=1 ;; *) die "usage: $0 [--quiet] [--purge]" ;; esac
done
say() { ((QUIET)) || log "$@"; }

[[ $(id -u) == 0 ]] || die "must run as root"
if [[ -e $NETNS_PATH && "$(stat -L -c %i /proc/self/ns/net)" == "$(stat -L -c %i "$NETNS_PATH")" ]]; then
  die "down.sh runs outside netns $NETNS (it would kill itself)"
fi

CTRD_SOCK="$STATE/containerd/containerd.sock"

# stop_pids TIMEOUT PID...: SIGTERM, wait up to TIMEOUT s, then SIGKILL
stop_pids() {
  local timeout="$1"; shift
  local pids=() p
  for p in "$@"; do [[ $p =~ ^[0-9]+$ ]] && kill -0 "$p" 2>/dev/null && pids+=("$p"); done
  ((${#pids[@]})) || return 0
  kill -TERM "${pids[@]}" 2>/dev/null
  local deadline=$((SECONDS + timeout)) alive
  while :; do
    alive=()
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive+=("$p"); done
    ((${#alive[@]})) || return 0
    if ((SECONDS >= deadline)); then kill -KILL "${alive[@]}" 2>/dev/null; break; fi
    sleep 0.2
  done
  deadline=$((SECONDS + 10))
  for p in "${alive[@]}"; do while kill -0 "$p" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done; done
}

# stop_daemons [TIMEOUT] NAME...: stop these daemons together
stop_daemons() {
  local timeout=15 pids=() n f p cmd
  [[ $1 =~ ^[0-9]+$ ]] && { timeout=$1; shift; }
  for n in "$@"; do
    f="$STATE/pids/$n.pid"
    [[ -f $f ]] || continue
    p="$(cat "$f")"; rm -f "$f"
    # a stale pid file (e.g. the machine was restarted) must not make us kill a stranger
    [[ $p =~ ^[0-9]+$ ]] || continue
    cmd="$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
    [[ $cmd == *"$n"* ]] && pids+=("$p")
  done
  ((${#pids[@]})) || return 0
  say "stopping $*"
  stop_pids "$timeout" "${pids[@]}"
}

# 1. the kubelet first, so nothing restarts containers; then the node agents
stop_daemons kubelet kube-router kube-proxy quarantine-release

# 2. pod sandboxes: remember their network namespaces, kill and delete every container
POD_NETNS=() POD_UIDS=() CONTAINER_IDS=()
if [[ -S $CTRD_SOCK ]] && ctr -a "$CTRD_SOCK" version >/dev/null 2>&1; then
  mapfile -t CONTAINER_IDS < <(ctr -a "$CTRD_SOCK" -n k8s.io containers ls -q 2>/dev/null)
  # what each container leaves outside the state dir: its pod's netns, its pod's log folder
  while read -r kind value; do
    case "$kind" in netns) POD_NETNS+=("$value") ;; uid) POD_UIDS+=("$value") ;; esac
  done < <(for c in "${CONTAINER_IDS[@]}"; do
    ctr -a "$CTRD_SOCK" -n k8s.io containers info "$c" 2>/dev/null | /usr/bin/python3 -I -c '
import json, sys
try:
    info = json.load(sys.stdin)
    uid = info.get("Labels", {}).get("io.kubernetes.pod.uid")
    if uid:
        print("uid", uid)
    for ns in info["Spec"].get("linux", {}).get("namespaces", []):
        if ns.get("type") == "network" and ns.get("path"):
            print("netns", ns["path"])
except Exception:
    pass'
  done | sort -u)
  for c in $(ctr -a "$CTRD_SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
    ctr -a "$CTRD_SOCK" -n k8s.io tasks kill -a -s SIGKILL "$c" >/dev/null 2>&1
  done
  for c in $(ctr -a "$CTRD_SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
    ctr -a "$CTRD_SOCK" -n k8s.io tasks delete -f "$c" >/dev/null 2>&1
  done
  for c in $(ctr -a "$CTRD_SOCK" -n k8s.io containers ls -q 2>/dev/null); do
    ctr -a "$CTRD_SOCK" -n k8s.io containers delete "$c" >/dev/null 2>&1
  done
fi
# pod netns created by the CNI of this cluster also show a pod address on eth0
if [[ -e $NETNS_PATH ]]; then
  for ns in /run/netns/cni-*; do
    [[ -e $ns ]] || continue
    ip -n "$(basename "$ns")" -4 -o addr show 2>/dev/null | grep -q " ${POD_CIDR%.*}\." && POD_NETNS+=("$ns")
  done
fi

# 3. the rest of the daemons
stop_daemons 20 kube-scheduler kube-controller-manager containerd kube-apiserver
stop_daemons etcd

# 4. anything still running inside our netns (e.g. containerd shims, a daemon whose pid file
#    was lost) or inside the pods' cgroups
if [[ -e $NETNS_PATH ]]; then
  mapfile -t left < <(ip netns pids "$NETNS" 2>/dev/null)
  if ((${#left[@]})); then say "stopping ${#left[@]} leftover process(es) in netns $NETNS"; stop_pids 5 "${left[@]}"; fi
fi
kubepods_procs() { cat /sys/fs/cgroup/*/kubepods/cgroup.procs /sys/fs/cgroup/*/kubepods/**/cgroup.procs 2>/dev/null | sort -u; }
shopt -s globstar nullglob
mapfile -t left < <(kubepods_procs)
if ((${#left[@]})); then say "killing ${#left[@]} leftover pod process(es)"; stop_pids 2 "${left[@]}"; fi

# 5. mounts under the state dir (kubelet volumes, container rootfs, shm) and pod netns
unmount_under() {
  local root="$1" m
  # deepest first
  while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "warning: cannot unmount $m"
  done < <(awk -v r="$root" '{ gsub(/\\040/, " ", $5); if ($5 == r || index($5, r "/") == 1) print $5 }' /proc/self/mountinfo | sort -r -u)
}
unmount_under "$STATE"
for ns in "${POD_NETNS[@]}"; do
  [[ $ns == /run/netns/* || $ns == /var/run/netns/* ]] || continue
  umount "$ns" 2>/dev/null || umount -l "$ns" 2>/dev/null; rm -f "$ns"
done

# leftovers of the kubelet and the CNI outside the state dir (paths these versions hard-code)
for uid in "${POD_UIDS[@]}"; do
  for d in /var/log/pods/*_"$uid"; do
    [[ -d $d ]] || continue
    for l in /var/log/containers/*.log; do [[ -L $l && $(readlink "$l") == "$d"/* ]] && rm -f "$l"; done
    rm -rf "$d"
  done
done
# pods deleted just before down.sh whose log folders the kubelet had no time to remove
if [[ -f $STATE/.up-started ]]; then
  while read -r d; do
    for l in /var/log/containers/*.log; do [[ -L $l && $(readlink "$l") == "$d"/* ]] && rm -f "$l"; done
    rm -rf "$d"
  done < <(find /var/log/pods -mindepth 1 -maxdepth 1 -type d -newer "$STATE/.up-started" 2>/dev/null)
fi
# the kubelet's per-container links whose pod log folder is gone (dangling links only)
find /var/log/containers -maxdepth 1 -xtype l -lname '/var/log/pods/*' -delete 2>/dev/null
for c in "${CONTAINER_IDS[@]}"; do rm -f /var/lib/cni/results/*-"$c"-*; done
rm -f /var/lib/kubelet/device-plugins/kubelet.sock /var/lib/kubelet/device-plugins/kubelet_internal_checkpoint
rmdir /var/lib/kubelet/device-plugins /var/lib/kubelet /var/lib/cni/results /var/lib/cni 2>/dev/null

# 6. the cluster's network namespace: takes its veths, bridge, iptables rules and ipsets along
if [[ -e $NETNS_PATH ]]; then
  say "deleting netns $NETNS"
  ip netns delete "$NETNS" 2>/dev/null || { umount -l "$NETNS_PATH" 2>/dev/null; rm -f "$NETNS_PATH"; }
fi

# 7. cgroups the kubelet and containerd created (deepest first)
for d in /sys/fs/cgroup/*/kubepods; do
  find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
  [[ -d $d ]] && log "warning: cgroup $d is still there"
done

# 8. bulky state (etcd data, pod volumes; with --purge the image store too); logs stay
if [[ -d $STATE ]]; then
  ((PURGE)) && rm -rf "$STATE/containerd/root"
  rm -rf "$STATE/containerd/state" "$STATE/etcd" "$STATE/kubelet/root" "$STATE/cni/ipam" 2>/dev/null ||
    log "warning: could not remove all of $STATE"
fi
say "cluster down"
exit 0
