# One image for every leafnode service (STYLE §3.7): docker-compose runs
# `leafnode router|uplink|store|api` from it, `leafnode run` runs them all.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p leafnode services \
    && touch leafnode/__init__.py services/__init__.py \
    && pip install . \
    && pip uninstall -y leafnode

COPY alembic.ini ./
COPY migrations ./migrations
COPY leafnode ./leafnode
COPY services ./services
# Editable: the store finds migrations/ next to services/ (services/store/migrate.py).
RUN pip install --no-deps -e . \
    && python -m compileall -q leafnode services migrations \
    && useradd --system --uid 10001 --home-dir /var/lib/leafnode leafnode \
    && mkdir -p /etc/leafnode /run/leafnode /var/lib/leafnode \
    && chown leafnode:leafnode /etc/leafnode /run/leafnode /var/lib/leafnode

USER leafnode
# Named volumes mounted here start with the image's (empty, leafnode-owned) dirs.
VOLUME ["/etc/leafnode", "/run/leafnode", "/var/lib/leafnode"]
EXPOSE 4222 8222
ENTRYPOINT ["leafnode"]
CMD ["run", "-c", "/etc/leafnode/leaf.conf"]
