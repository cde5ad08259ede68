"""Prometheus metrics, health figures and trace context: seeing that promises are kept.

- `record`: what the rest of the worker calls (the service's observer, the hooks); every
  call is a no-op while metrics are off and logs, never raises, when it fails.
- `metrics`: the metric families (imported only once the multiprocess directory is set).
- `scrape`: figures read from Redis and the broker when Prometheus scrapes.
- `server`: the per-run multiprocess directory and the /metrics HTTP server.
- `hooks`: the Celery signal receivers, registered with the others in worker/shell/hooks.py.

Every metric, alert and probe: docs/observability.md.
"""
