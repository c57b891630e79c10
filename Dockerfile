# StyleBot on a CUDA PyTorch base. Build:  docker build -t stylebot .
# Run:    docker run --gpus all --env-file .env -v stylebot-data:/data -p 8080:8080 stylebot
ARG BASE_IMAGE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    STYLEBOT_DATA_DIR=/data \
    STYLEBOT_HEALTH_PORT=8080 \
    STYLEBOT_DEVICE=auto

WORKDIR /app
# Dependencies first so code changes don't reinstall them; the base image's torch and
# torchvision satisfy the pins, so pip keeps them instead of downloading CPU wheels.
COPY pyproject.toml README.md* ./
COPY stylecore ./stylecore
COPY bot ./bot
RUN pip install --no-compile . \
    && useradd --create-home --uid 10001 stylebot \
    && mkdir -p /data && chown stylebot:stylebot /data

USER stylebot
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD python -c "import os,urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('STYLEBOT_HEALTH_PORT', '8080'), timeout=4)"

# SIGTERM (docker stop) lets running jobs finish for STYLEBOT_SHUTDOWN_GRACE seconds;
# give docker stop a longer timeout than that: docker stop -t 90 ...
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot"]
