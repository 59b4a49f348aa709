#!/usr/bin/env bash
# run-in-cluster.sh CMD...: run CMD inside the cluster's network namespace (so Service cluster IPs
# and pod IPs are reachable) with PATH (kubectl, helm) and KUBECONFIG of the local e2e cluster.
# The command keeps the host's mounts (nsenter --net, not `ip netns exec`).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"
(($#)) || die "usage: $0 CMD [ARGS...]"
[[ -f $STATE/env.sh ]] || die "no cluster: $STATE/env.sh missing (run e2e/cluster/up.sh)"
[[ -e $NETNS_PATH ]] || die "no cluster: netns $NETNS missing (run e2e/cluster/up.sh)"
# shellcheck disable=SC1091
source "$STATE/env.sh"
exec nsenter --net="$NETNS_PATH" -- "$@"
