# batch-stt server. Volumes: /audio (read-only is fine), /data (database, results, logs).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    AUDIO_DIR=/audio DATA_DIR=/data HOST=0.0.0.0 PORT=8000

# ffmpeg: the server probes durations and cuts long files into parts (SPLIT_SECONDS).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY server ./server
COPY stt_common ./stt_common
RUN pip install '.[server]' \
 && useradd --system --uid 10001 --home-dir /data stt \
 && mkdir -p /audio /data && chown stt /data

USER stt
VOLUME ["/audio", "/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=4).status == 200 else 1)"
CMD ["stt-server", "serve"]
