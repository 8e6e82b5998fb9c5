# syntax=docker/dockerfile:1
# One image for the operator and every worker pool:
#   goreports operator --namespace NS ...     (the kopf operator)
#   goreports worker --pattern P ...          (a worker pool process)
# The Helm chart (helm/go-reports) runs it as uid 10001 with a read-only root filesystem and an
# emptyDir on /tmp. Build from the repository root:  docker build -t go-reports:0.1.0 .

# --- build: install go-reports and its runtime dependencies (no test extras) into a venv ---
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Only what the distribution needs (see .dockerignore): the code folders mapped into the
# goreports namespace by pyproject.toml, and the README it names.
COPY pyproject.toml README.md ./
COPY core/ core/
COPY workers/ workers/
COPY operator/ operator/
COPY api/ api/
COPY cli/ cli/
COPY proto/ proto/
# Byte-code is compiled now: at run time the root filesystem is read-only.
RUN python -m venv /opt/goreports \
 && /opt/goreports/bin/pip install --upgrade pip \
 && /opt/goreports/bin/pip install . \
 && /opt/goreports/bin/python -m compileall -q /opt/goreports/lib \
 && /opt/goreports/bin/goreports --help > /dev/null

# --- runtime ---
FROM python:3.11-slim
RUN groupadd --system --gid 10001 goreports \
 && useradd --system --uid 10001 --gid goreports --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin goreports
COPY --from=build /opt/goreports /opt/goreports
# The one schema: the operator and the API validate specs against the CRD files.
COPY deploy/crds/ /opt/goreports/crds/
ENV PATH=/opt/goreports/bin:$PATH \
    GOREPORTS_CRD_DIR=/opt/goreports/crds \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp
# Numeric user, so that Kubernetes can check runAsNonRoot without reading /etc/passwd.
USER 10001:10001
WORKDIR /tmp
# 8080: the operator's liveness endpoint; 9090: workers' /healthz and /metrics.
EXPOSE 8080 9090
ENTRYPOINT ["goreports"]
CMD ["--help"]
