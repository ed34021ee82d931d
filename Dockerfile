# hector-py container image.
#   docker build -t hector-py .
#   docker run -p 8080:8080 -v "$PWD/my.yaml:/app/config.yaml:ro" hector-py
# Without a mounted config it serves configs/example.yaml (the offline demo model).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY hector_py ./hector_py
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=8080
RUN groupadd --system --gid 10001 hector \
    && useradd --system --uid 10001 --gid hector --home-dir /app --shell /usr/sbin/nologin hector \
    && mkdir -p /app \
    && chown hector:hector /app
COPY --from=build /opt/venv /opt/venv
COPY --chown=hector:hector configs/example.yaml /app/config.yaml
WORKDIR /app
USER 10001:10001
EXPOSE 8080
# slim has no curl: probe /health/live with Python's urllib (a non-2xx answer raises).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8080') + '/health/live', timeout=4)"]
ENTRYPOINT ["hector"]
CMD ["serve", "-c", "/app/config.yaml"]
