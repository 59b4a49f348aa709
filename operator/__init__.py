"""The kopf operator of CodeSubmission resources: admission, sandbox Jobs, results, cleanup."""
