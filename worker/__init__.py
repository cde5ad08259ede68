"""The after-sales worker. The Celery app lives in `worker.celery` (`celery -A worker` finds it).

This package's __init__ stays empty of imports so that `worker.rules` can be used without
loading Celery.
"""
