# rewind/demo-api: the demo user-behaviour API (ci/demo_api/app.py) on gunicorn, port 8080,
# non-root. Built by `make images` from the repository root, after `make wheelhouse`:
#   docker build -f ci/docker/demo-api.Dockerfile --build-arg BASE=rewind/base:0.1.0 -t rewind/demo-api .
# DEMO_API_REGRESSION=1 turns it into the "bad release" replay is meant to catch.
ARG BASE=rewind/base:0.1.0

# --- flask and gunicorn (the demo extra), from the wheelhouse (no index) --------------------
FROM ${BASE} AS venv
COPY constraints.txt /tmp/constraints.txt
COPY build/wheelhouse /tmp/wheels
RUN python3 -m venv --without-pip /opt/demo/venv \
 && pip=$(echo /tmp/wheels/pip-*.whl) \
 && python3 "$pip/pip" --python /opt/demo/venv/bin/python install --no-cache-dir \
      --no-index --find-links /tmp/wheels -c /tmp/constraints.txt flask gunicorn

FROM ${BASE}
RUN useradd --create-home --uid 10001 --user-group demo
COPY --from=venv /opt/demo/venv /opt/demo/venv
WORKDIR /app
COPY ci/demo_api ci/demo_api
USER 10001:10001
ENV PATH=/opt/demo/venv/bin:$PATH \
    DEMO_API_DB=/tmp/demo-api.sqlite3
EXPOSE 8080
# gthread workers keep connections alive, as the recorded traffic expects
ENTRYPOINT ["gunicorn", "--bind", "0.0.0.0:8080", "--worker-class", "gthread", "--workers", "2", \
            "--threads", "4", "--keep-alive", "75", "--no-control-socket", "ci.demo_api.app:app"]
