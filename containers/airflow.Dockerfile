# syntax=docker/dockerfile:1.7
# The Airflow image of the cluster (infra/terraform/modules/platform's helm_release.airflow): the
# official apache/airflow image, whose entrypoint, user (50000) and layout the Airflow chart
# expects, running a venv made from containers/locks/airflow.lock alone (Airflow 3.3.2, its
# providers, the light part of flightdeck's dependencies) with the flightdeck package, the DAGs and the
# report plugin baked in, so the scheduler, DAG processor and workers parse and run exactly these DAG files.
# Build with `make images` (it passes BASE_DIGEST from containers/images.yaml).
ARG BASE_DIGEST

# ---- build: the venv from the lock, and the package; uv stays in this stage ----
FROM apache/airflow:3.3.2-python3.11@${BASE_DIGEST} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 UV_NO_CACHE=1 UV_LINK_MODE=copy
# The official image installs pip packages into the airflow user's home (PIP_USER): uv goes there.
RUN python -m pip install uv==0.13.9 \
 && python -m venv /home/airflow/venv
COPY containers/locks/airflow.lock /tmp/airflow.lock
# --no-deps: the lock is the complete, resolved set; `uv pip check` fails the build if it is not.
RUN uv pip install --python /home/airflow/venv/bin/python --no-deps -r /tmp/airflow.lock \
 && uv pip check --python /home/airflow/venv/bin/python
WORKDIR /app
COPY --chown=airflow:0 pyproject.toml README.md ./
COPY --chown=airflow:0 components ./components
COPY --chown=airflow:0 pipelines ./pipelines
RUN uv pip install --python /home/airflow/venv/bin/python --no-deps -e /app \
 && /home/airflow/venv/bin/python -c "import components.orchestration.runtime"

# ---- runtime: the official image with the venv first on PATH, and the DAGs ----
FROM apache/airflow:3.3.2-python3.11@${BASE_DIGEST} AS runtime
ARG BASE_DIGEST
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="flightdeck-airflow" \
      org.opencontainers.image.description="Airflow 3 with the flightdeck DAGs and the light part of the package" \
      org.opencontainers.image.source="https://github.com/flightdeck/flightdeck" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="docker.io/apache/airflow:3.3.2-python3.11" \
      org.opencontainers.image.base.digest="${BASE_DIGEST}"
COPY --from=build --chown=airflow:0 /home/airflow/venv /home/airflow/venv
COPY --from=build --chown=airflow:0 /app /app
COPY --chown=airflow:0 dags /opt/airflow/dags
# The flightdeck plugin: the report pages behind the stage tasks' extra links (docs/AIRFLOW.md, "Reports").
COPY --chown=airflow:0 plugins /opt/airflow/plugins
# The venv's airflow and python first: the entrypoint runs `airflow` and `python` from PATH.
ENV PATH=/home/airflow/venv/bin:$PATH \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/airflow/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/airflow/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    PYTHONDONTWRITEBYTECODE=1
USER 50000:0
ENTRYPOINT ["/usr/bin/dumb-init", "--", "/entrypoint"]
CMD ["--help"]
