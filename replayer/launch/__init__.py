"""rewind-launch: a replay as Kubernetes Jobs (arguments, manifests, API calls, waiting,
the report bundle, the master Pod's entry point)."""
