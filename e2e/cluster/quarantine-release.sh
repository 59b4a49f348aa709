#!/usr/bin/env bash
# Daemon (run inside the cluster's netns by up.sh): releases a new pod's IP from the nftables set
# `ip monaco quarantine` once kube-router has installed that pod's firewall jump rules, i.e. once its
# NetworkPolicies are enforced. See cni-quarantine for why. An IP that kube-router never picks up
# stays quarantined (fail closed); the CNI DEL of its pod removes it.
set -uo pipefail
echo "quarantine-release: watching nftables set ip monaco quarantine"
while :; do
  members="$(nft list set ip monaco quarantine 2>/dev/null | tr '\n\t' '  ' |
    sed -n 's/.*elements = { \([^}]*\) }.*/\1/p' | tr -d ',')"
  if [[ -n $members ]]; then
    rules="$(iptables -S KUBE-ROUTER-FORWARD 2>/dev/null)"
    for ip in $members; do
      if [[ $rules == *"-d $ip/32 "* && $rules == *"-s $ip/32 "* ]]; then
        nft delete element ip monaco quarantine "{ $ip }" 2>/dev/null && echo "$(date -u +%T.%N) released $ip"
      fi
    done
  fi
  sleep 0.1
done
