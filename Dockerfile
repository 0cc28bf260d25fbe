# The ConverSA Ingest image: workers, beat, Flower, the metrics exporter, the HTTP API and the
# CLI (`conversa`). Production adapters only (S3, MongoDB, Pinecone, OpenAI); for the local
# ones build with --build-arg LOCK=requirements/local.lock.
#
# The base is pinned by version (bump it deliberately; add @sha256:<digest> where the
# registry is reachable, so a re-tagged image cannot change what is built).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/conversa
ENV PATH=/opt/conversa/bin:$PATH

# Dependencies in their own layer, exactly as locked (scripts/lock): a code change does not
# reinstall them, and every build gets the same versions.
ARG LOCK=requirements/runtime.lock
COPY requirements/ /requirements/
RUN pip install --require-hashes --no-deps -r /${LOCK}

# The code, installed without touching the locked dependencies; pip check fails the build if
# the lock no longer satisfies pyproject.toml.
WORKDIR /src
COPY pyproject.toml README.md celeryconfig.py ./
COPY domain ./domain
COPY adapters ./adapters
COPY pipeline ./pipeline
COPY workers ./workers
COPY cli ./cli
COPY localstack ./localstack
COPY api ./api
RUN pip install --no-deps . && pip check

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/conversa/bin:$PATH \
    CONVERSA_DATA_DIR=/var/lib/conversa
# A system user without a login shell; the only folder it writes is its data dir (worker
# liveness files, beat's schedule), which Kubernetes mounts as an emptyDir.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/conversa --create-home \
        --shell /usr/sbin/nologin conversa
COPY --from=build /opt/conversa /opt/conversa
USER 10001:10001
WORKDIR /var/lib/conversa
ENTRYPOINT ["conversa"]
CMD ["--help"]
