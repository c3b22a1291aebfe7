# bitgate's miner server: Epistula verification, back-pressure and forwarding to vLLM.
# vLLM runs beside it (its own image, on the GPU); see deploy/compose.miner.yaml and
# miners/GPU.md. Build from the repository root:
#   docker build -f deploy/miner.Dockerfile -t bitgate-miner .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /opt/bitgate
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY router ./router
COPY ranking ./ranking
COPY miners ./miners
COPY load ./load
RUN pip install . && useradd --system --uid 10001 miner
USER miner

EXPOSE 8091
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8091/health', timeout=2)"]
ENTRYPOINT ["bitgate", "miner", "serve"]
# Arguments come from the compose file or `docker run … bitgate-miner --upstream URL …`.
CMD ["--help"]
