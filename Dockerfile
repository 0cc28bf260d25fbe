# The ConverSA Ingest image: workers, beat, Flower and the CLI. Production adapters only
# (S3, MongoDB, Pinecone, OpenAI); build with --build-arg EXTRAS=local for the local ones.
FROM python:3.11-slim

ARG EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

RUN useradd --create-home --uid 10001 conversa
WORKDIR /app
COPY pyproject.toml README.md celeryconfig.py ./
COPY domain ./domain
COPY adapters ./adapters
COPY pipeline ./pipeline
COPY workers ./workers
COPY cli ./cli
COPY localstack ./localstack
RUN pip install --no-cache-dir ".${EXTRAS:+[$EXTRAS]}"

USER conversa
ENTRYPOINT ["conversa"]
CMD ["--help"]
