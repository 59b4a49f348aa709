#!/usr/bin/env bash
# What to read when an e2e test failed: Monaco's logs, its pods and resources, the cluster's events.
set -u
ns=${MONACO_E2E_NAMESPACE:-monaco-e2e}
section() { printf '\n===== %s\n' "$*"; }
section "pods in every namespace"
kubectl get pods -A -o wide
section "CodeSubmissions"
kubectl get codesubmissions -A 2>&1 | tail -n 60
for component in operator api; do
  section "logs of the $component (last 200 lines, and of the previous container if it restarted)"
  kubectl logs -n "$ns" -l "app.kubernetes.io/component=$component" --tail=200 --all-containers --prefix 2>&1
  kubectl logs -n "$ns" -l "app.kubernetes.io/component=$component" --tail=50 --previous --prefix 2>/dev/null
done
section "events, oldest first (last 150)"
kubectl get events -A --sort-by=.lastTimestamp 2>&1 | tail -n 150
