"""The kopf operator of CodeSubmission resources.

  main.py        the kopf registry: three indexes (submissions, sandbox Jobs, sandbox pods), three event
                 handlers, and one loop that admits and checks (woken by every event, at least once a second)
  admission.py   pending -> queued, FIFO admission within MAX_WORKERS counted from the indexes
  builders.py    the ConfigMap, NetworkPolicy and Job of a submission (pure functions)
  collect.py     pod and Job events, start deadlines, lost Jobs; reads the result when the pod ends
  results.py     the verdict table: pod and Job states, then the runner's envelopes
  cleanup.py     the result written once (compare-and-set on the phase), children deleted, TTL sweep
  cluster.py     the few Kubernetes API calls, each safe to repeat
"""
