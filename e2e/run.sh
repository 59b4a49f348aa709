#!/usr/bin/env bash
# `make e2e`: bring up the local single-node cluster unless KUBECONFIG names one, run the e2e suite
# inside it (the suite installs Monaco with its Helm chart itself), print the operator's and API's
# logs and the cluster's events when anything fails, and tear the cluster down again.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${E2E_PYTHON:-.venv/bin/python}
started=$(date +%s)
if [[ -z ${KUBECONFIG:-} ]]; then
  if ! bash e2e/cluster/up.sh; then
    echo "e2e: the local cluster did not come up; its daemons' logs are under ${MONACO_E2E_STATE:-/var/lib/monaco-e2e}/logs" >&2
    tail -n 40 "${MONACO_E2E_STATE:-/var/lib/monaco-e2e}"/logs/*.log 2>/dev/null >&2
    exit 1
  fi
  # only a cluster this run brought up is torn down (up.sh refuses to replace a live one: exit 3)
  trap 'bash e2e/cluster/down.sh' EXIT
  in_cluster=(bash e2e/cluster/run-in-cluster.sh)
else
  echo "e2e: using the cluster of KUBECONFIG=$KUBECONFIG"
  in_cluster=()
fi
echo "e2e: cluster ready after $(( $(date +%s) - started )) s"
"${in_cluster[@]}" "$PY" -m pytest e2e -v -p no:cacheprovider -o testpaths=e2e "$@"
rc=$?
if ((rc != 0)); then
  echo "e2e: failed ($rc); what the cluster says:" >&2
  "${in_cluster[@]}" bash e2e/diagnose.sh >&2
fi
echo "e2e: done in $(( $(date +%s) - started )) s"
exit $rc
