# syntax=docker/dockerfile:1.7
# The Triton image: NVIDIA's Triton Inference Server 26.09 (server 2.73, the version of the
# tritonclient in the lock) plus the python-backend dependencies of the online model (torch,
# feast with its duckdb and redis extras, boto3) and the flightdeck code it imports. Its entrypoint is `tritonserver`, not the
# flightdeck CLI: this image serves models; infra/k8s/triton passes the server arguments.
ARG BASE_DIGEST

# ---- build: install the python-backend deps into one folder ----
FROM nvcr.io/nvidia/tritonserver:26.09-py3@${BASE_DIGEST} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# The python backend embeds the image's own Python; triton.lock is resolved for 3.12 (Ubuntu 24.04).
# Fail here, clearly, if a new base moves it.
RUN python3 -c "import sys; assert sys.version_info[:2] == (3, 12), f'triton.lock is for Python 3.12, base has {sys.version}'"
COPY containers/locks/triton.lock /tmp/triton.lock
# --target: a folder on PYTHONPATH, outside the distribution's externally-managed site-packages.
# --no-deps: the lock is the complete, resolved set.
RUN python3 -m pip install --no-deps --target /opt/pydeps -r /tmp/triton.lock
# The flightdeck code goes in as source on PYTHONPATH, the layout of the stage image's editable
# install: components/features/feast_repo.py finds feature_repo/ next to components/, which a wheel in
# site-packages would not have, and pyproject's requires-python (<3.12) is the stage images'.
WORKDIR /app
COPY pyproject.toml README.md ./
COPY components ./components
COPY feature_repo ./feature_repo
# Fail the build, not the first request, when the lock misses something the online model
# (components/serving/triton/online_model.py) imports; triton_python_backend_utils exists only inside
# the python backend, so its other imports are checked.
RUN PYTHONPATH=/app:/opt/pydeps PYTHONDONTWRITEBYTECODE=1 python3 -c "import boto3, feast, numpy, pandas, redis, torch; \
from components.features import feast_repo, retrieval; from components.core import settings, store; from components.contracts import signature; from components.serving.triton import routing"

# ---- runtime ----
FROM nvcr.io/nvidia/tritonserver:26.09-py3@${BASE_DIGEST} AS runtime
ARG BASE_DIGEST
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="flightdeck-triton" \
      org.opencontainers.image.description="Triton Inference Server with the flightdeck online model's python-backend deps; entrypoint: tritonserver" \
      org.opencontainers.image.source="https://github.com/flightdeck/flightdeck" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="nvcr.io/nvidia/tritonserver:26.09-py3" \
      org.opencontainers.image.base.digest="${BASE_DIGEST}"
# A high, dedicated uid (not the image's triton-server, uid 1000, which may collide with host users).
RUN groupadd --system --gid 10001 flightdeck \
 && useradd --system --uid 10001 --gid flightdeck --no-create-home flightdeck
COPY --from=build /opt/pydeps /opt/pydeps
COPY --from=build /app /app
ENV PYTHONPATH=/app:/opt/pydeps \
    PYTHONDONTWRITEBYTECODE=1 \
    FLIGHTDECK_HOME=/tmp/flightdeck
USER 10001:10001
EXPOSE 8000 8001 8002
ENTRYPOINT ["tritonserver"]
CMD ["--model-repository=/models", "--model-control-mode=explicit"]
