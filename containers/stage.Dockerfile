# syntax=docker/dockerfile:1.7
# The stage image: every CPU stage (ingest, validate, features, evaluate, register, deploy,
# predict-batch, monitor). The stage is chosen by arguments: `docker run IMAGE ingest --start ...`.
# Build with `make images` (it passes BASE_DIGEST from containers/images.yaml, the one place
# where base digests live).
ARG BASE_DIGEST

# ---- build: a venv from the lock file; uv and the wheel cache stay in this stage ----
FROM python:3.11-slim-bookworm@${BASE_DIGEST} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 UV_NO_CACHE=1 UV_LINK_MODE=copy
RUN python -m pip install uv==0.13.9 \
 && python -m venv /opt/venv
COPY containers/locks/stage.lock /tmp/stage.lock
# The lock pins torch==2.13.0+cpu, a build published only on the PyTorch CPU index: install that
# one wheel from there first; the rest of the lock then comes from PyPI (torch already satisfied).
# This keeps the index override to one package (no dependency confusion for the others).
# --no-deps: the lock is the complete, resolved set, so nothing outside it can come in; `uv pip
# check` then fails the build if the lock ever misses a dependency.
RUN uv pip install --python /opt/venv/bin/python --no-deps \
      --index-url https://download.pytorch.org/whl/cpu torch==2.13.0+cpu \
 && uv pip install --python /opt/venv/bin/python --no-deps -r /tmp/stage.lock \
 && uv pip check --python /opt/venv/bin/python
# The project keeps the checkout's layout under /app (the feature repo sits next to the code).
WORKDIR /app
COPY pyproject.toml README.md ./
COPY components ./components
COPY pipelines ./pipelines
COPY feature_repo ./feature_repo
RUN uv pip install --python /opt/venv/bin/python --no-deps -e /app \
 && /opt/venv/bin/flightdeck --help > /dev/null

# ---- runtime: the base image, the venv and the code; no compiler, no uv ----
FROM python:3.11-slim-bookworm@${BASE_DIGEST} AS runtime
ARG BASE_DIGEST
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="flightdeck-stage" \
      org.opencontainers.image.description="flightdeck CPU stage image; entrypoint: the flightdeck CLI" \
      org.opencontainers.image.source="https://github.com/flightdeck/flightdeck" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim-bookworm" \
      org.opencontainers.image.base.digest="${BASE_DIGEST}"
RUN groupadd --system --gid 10001 flightdeck \
 && useradd --system --uid 10001 --gid flightdeck --home-dir /home/flightdeck --create-home flightdeck
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
# FLIGHTDECK_HOME under /tmp: pods mount an emptyDir there and keep the root filesystem read-only.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FLIGHTDECK_HOME=/tmp/flightdeck
WORKDIR /app
USER 10001:10001
ENTRYPOINT ["flightdeck"]
CMD ["--help"]
