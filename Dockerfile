# The hub image: the `hub` console script on Python 3.11. docker-compose.yml also runs
# local_personalize from it (same code, different entrypoint).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# .dockerignore keeps tests, benches, the venv and local state out of the build context.
COPY . /app
RUN pip install /app \
    && useradd --system --uid 10001 --user-group --home-dir /app --no-create-home hub \
    && mkdir -p /data /state /app/var \
    && chown hub:hub /data /state /app/var

# Named volumes mounted on /data and /state start with this ownership, so the non-root user can write them.
USER hub
EXPOSE 8000 8001
ENTRYPOINT ["hub"]
CMD ["run", "--config", "/app/examples/kafka-redis.yaml"]
