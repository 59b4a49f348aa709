#!/usr/bin/env bash
# `make bench-k8s`: the Kubernetes benchmarks (bench/k8s.py) on the local cluster, or on KUBECONFIG's:
# brings the cluster up if needed, installs a release `monaco-bench` with the chart (a warm pool of
# Python sandboxes, so that warm and cold paths are measured in one run), prints the tables,
# uninstalls, and tears down a cluster it brought up.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${E2E_PYTHON:-.venv/bin/python}
VALUES=${MONACO_E2E_VALUES:-helm/values-local.yaml}
WARM_POOL=${MONACO_BENCH_WARM_POOL:-'{"python": 2}'}
WARM_POOL_BURST=${MONACO_BENCH_WARM_POOL_BURST:-'{"python": 1}'}
if [[ -z ${KUBECONFIG:-} ]]; then
  bash e2e/cluster/up.sh || exit 1
  trap 'bash e2e/cluster/down.sh' EXIT
  in_cluster=(bash e2e/cluster/run-in-cluster.sh)
else
  in_cluster=()
fi
"${in_cluster[@]}" helm upgrade --install monaco-bench helm/monaco -n monaco-bench --create-namespace \
  -f "$VALUES" --set maxWorkers=3 --set-json "warmPool=$WARM_POOL" --set-json "warmPoolBurst=$WARM_POOL_BURST" --set sandbox.cpu=300m \
  --wait --timeout 300s || exit 1
MONACO_BENCH_RELEASE=monaco-bench "${in_cluster[@]}" "$PY" bench/k8s.py "$@"
rc=$?
"${in_cluster[@]}" helm uninstall monaco-bench -n monaco-bench --wait --timeout 300s
exit $rc
