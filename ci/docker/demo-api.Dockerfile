# rewind/demo-api: the demo user-behaviour API (ci/demo_api/app.py) on gunicorn, port 8080,
# non-root. Build from the repository root:
#   docker build -f ci/docker/demo-api.Dockerfile -t rewind/demo-api .
# DEMO_API_REGRESSION=1 turns it into the "bad release" replay is meant to catch.

FROM python:3.11.10-slim-bookworm
RUN pip install --no-cache-dir flask==3.1.3 gunicorn==27.0.1 \
 && useradd --create-home --uid 10001 --user-group demo
WORKDIR /app
COPY ci/demo_api ci/demo_api
USER 10001:10001
ENV PYTHONUNBUFFERED=1 \
    DEMO_API_DB=/tmp/demo-api.sqlite3
EXPOSE 8080
# gthread workers keep connections alive, as the recorded traffic expects
ENTRYPOINT ["gunicorn", "--bind", "0.0.0.0:8080", "--worker-class", "gthread", "--workers", "2", \
            "--threads", "4", "--keep-alive", "75", "--no-control-socket", "ci.demo_api.app:app"]
