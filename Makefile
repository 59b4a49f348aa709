.PHONY: help
help:
	@echo "targets: cluster-up cluster-down e2e-cluster-test"

# ---- local e2e cluster (e2e/cluster/, owner: cluster harness) --------------------------
# cluster-up: a real single-node Kubernetes inside netns monaco-e2e (builds are cached under
#   $${MONACO_E2E_CACHE:-/var/cache/monaco-e2e}; state under $${MONACO_E2E_STATE:-/var/lib/monaco-e2e})
# cluster-down: removes every process, mount, netns, iptables rule and cgroup it created
# e2e-cluster-test: the tests proving the cluster is real, run inside the netns
E2E_PYTHON ?= .venv/bin/python
.PHONY: cluster-up cluster-down e2e-cluster-test e2e-venv
cluster-up:
	bash e2e/cluster/up.sh
cluster-down:
	bash e2e/cluster/down.sh
e2e-venv:
	@test -x $(E2E_PYTHON) || { /usr/bin/python3 -m venv .venv && .venv/bin/pip install -q pytest; }
	@$(E2E_PYTHON) -c 'import pytest' 2>/dev/null || $(E2E_PYTHON) -m pip install -q pytest
e2e-cluster-test: e2e-venv
	bash e2e/cluster/run-in-cluster.sh $(E2E_PYTHON) -m pytest -v e2e/test_cluster.py
# ---- end of local e2e cluster block ------------------------------------------------------
