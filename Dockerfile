# The worker image: `celery -A worker worker|beat|flower` (compose.yaml runs each).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Installed from /src, run from /app: Celery imports `worker` from the installed package,
# not from a source tree in the working directory.
COPY pyproject.toml README.md /src/
COPY schemas /src/schemas
COPY worker /src/worker
COPY tasks /src/tasks
RUN pip install /src && rm -rf /src

RUN useradd --system --uid 10001 --home-dir /app aftersales \
    && mkdir -p /app/var/labels \
    && chown -R aftersales /app
WORKDIR /app
USER aftersales

ENV AFTERSALES_LABEL_DIR=/app/var/labels
CMD ["celery", "-A", "worker", "worker", "--loglevel", "INFO"]
