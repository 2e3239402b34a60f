# syntax=docker/dockerfile:1.7
# The training image: the stage image's code with the CUDA build of torch, for GPU nodes.
# `docker run --gpus all IMAGE train --start ... --end ...`.
#
# How the CUDA build gets in: requirements/dev.lock pins torch==2.13.0+cpu (dev and CI machines
# find it in a local folder of wheels). containers/locks/train.lock is resolved by
# containers/lock.sh from the same requirements/base.in, constrained by dev.lock without that one
# line, so torch==2.13.0 resolves on PyPI, whose Linux x86_64 wheel is the CUDA build; its CUDA
# runtime (nvidia-* wheels, cuDNN, NCCL) is pinned in the lock too. Only the NVIDIA driver comes
# from the node, so a plain Debian base is enough (no nvidia/cuda base image).
ARG BASE_DIGEST

FROM python:3.11-slim-bookworm@${BASE_DIGEST} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 UV_NO_CACHE=1 UV_LINK_MODE=copy
RUN python -m pip install uv==0.13.9 \
 && python -m venv /opt/venv
COPY containers/locks/train.lock /tmp/train.lock
# --no-deps: the lock is the complete, resolved set (nothing outside it comes in); `uv pip check`
# fails the build if it ever misses a dependency.
RUN uv pip install --python /opt/venv/bin/python --no-deps -r /tmp/train.lock \
 && uv pip check --python /opt/venv/bin/python
WORKDIR /app
COPY pyproject.toml README.md ./
COPY components ./components
COPY pipelines ./pipelines
COPY feature_repo ./feature_repo
RUN uv pip install --python /opt/venv/bin/python --no-deps -e /app \
 && /opt/venv/bin/flightdeck --help > /dev/null

FROM python:3.11-slim-bookworm@${BASE_DIGEST} AS runtime
ARG BASE_DIGEST
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="flightdeck-train" \
      org.opencontainers.image.description="flightdeck training image (CUDA torch); entrypoint: the flightdeck CLI" \
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
# NVIDIA_* tell the NVIDIA container runtime to mount the driver's compute libraries.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FLIGHTDECK_HOME=/tmp/flightdeck \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
WORKDIR /app
USER 10001:10001
ENTRYPOINT ["flightdeck"]
CMD ["train", "--help"]
