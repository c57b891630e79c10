# StyleBot (the Discord bot and its engine) on PyTorch's CUDA build; it also runs on a CPU-only host.
#   docker compose up -d                         everything below, configured in compose.yaml
#   docker build -t stylebot .                   add --build-arg EXTRAS=ray for the Ray executor
# The README's "Docker" section has the plain `docker run` equivalent.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STYLEBOT_DATA_DIR=/data \
    STYLEBOT_HEALTH_HOST=0.0.0.0 \
    STYLEBOT_HEALTH_PORT=8080 \
    STYLEBOT_DEVICE=auto \
    TORCH_HOME=/data/torch

# A font with accents for the names on the style contact sheet, and the unprivileged user.
# Debian keeps only the current build of a package, so pinning its version would break rebuilds.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --user-group stylebot \
    && install -d -o 10001 -g 10001 /data

# The torch the tests run on: keep equal to the Makefile's TORCH_SPEC (tests/test_packaging.py checks).
# PyPI's Linux wheels are the CUDA build and bring their CUDA libraries with them; the host needs
# only the NVIDIA driver (and the NVIDIA Container Toolkit) for the GPU.
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
RUN pip install "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"

# The other dependencies, from pyproject.toml alone: editing the code does not invalidate this layer.
# EXTRAS: optional dependency groups of pyproject.toml, comma-separated (e.g. "ray").
ARG EXTRAS=""
WORKDIR /app
COPY pyproject.toml docker/requirements.py ./
RUN python requirements.py pyproject.toml --extras "${EXTRAS}" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}" \
    && rm /tmp/requirements.txt requirements.py

# The code, without touching the dependencies installed above.
COPY README.md ./
COPY stylecore ./stylecore
COPY bot ./bot
COPY docker/healthcheck.py ./docker/
RUN pip install --no-deps .

USER 10001:10001
VOLUME ["/data"]
EXPOSE 8080
# Healthy while /healthz answers 200; with STYLEBOT_HEALTH_PORT=off there is nothing to ask and it passes.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "/app/docker/healthcheck.py"]
# SIGTERM lets running jobs finish for STYLEBOT_SHUTDOWN_GRACE seconds (default 60): give `docker stop`
# longer than that (compose.yaml's stop_grace_period; `docker run --stop-timeout 90`).
STOPSIGNAL SIGTERM
CMD ["stylebot"]
