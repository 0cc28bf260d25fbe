"""docker-compose.yml and .env.example, run as an operator runs them (without Docker).

Every service of ours in the compose file is started as a local process with the command and
the environment compose would give it; the infrastructure services' host names point at local
stand-ins (Valkey for redis, the MongoDB-wire server for mongodb, moto's S3 server for the S3
server) and Pinecone and OpenAI at the fake servers. Each healthcheck must pass; then a
document is uploaded through the API service, ingested by the worker services and found by a
search, and the exporter and Flower answer (tests/support/compose.py says how).
"""

import json
import time
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.compose import (
    ROOT,
    load_compose,
    plan,
    program_path,
    read_env_file,
    running,
    wait_all_healthy,
)
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_pinecone import FakePinecone
from tests.support.image import parse_dockerfile

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Which local server stands in for an infrastructure image (by the image's name).
STAND_INS = {"redis": "broker", "valkey/valkey": "broker", "mongo": "mongodb",
             "chrislusf/seaweedfs": "s3", "minio/minio": "s3"}
HEALTH_TIMEOUT = 240.0
SAMPLE = ROOT / "samples" / "sourdough-bread-baking.md"


def _role(image: str) -> str | None:
    return STAND_INS.get(image.split(":", 1)[0])


def _local_size(argv: list[str]) -> list[str]:
    """One pool process per worker and one API process: the services are what is tested, on
    a 2-core machine, not the pool sizes."""
    argv = list(argv)
    for flag in ("-c", "--workers"):
        if flag in argv:
            argv[argv.index(flag) + 1] = "1"
    return argv


def _api_key(client: httpx.Client, outbox: Path) -> str:
    assert client.post("/v1/users", json={"email": "ops@example.com"}).status_code == 202
    code = json.loads(outbox.read_text().splitlines()[-1])["code"]
    issued = client.post("/v1/users/verify", json={"email": "ops@example.com", "code": code})
    assert issued.status_code == 201, issued.text
    return str(issued.json()["api_key"])


def test_the_compose_services_come_up_ingest_and_search(redis_url, mongo_url,
                                                        mongo_database_name, s3_endpoint,
                                                        tmp_path):
    env_file = read_env_file(ROOT / ".env.example")  # the operator's .env
    compose = load_compose(env_file)
    _, stages = parse_dockerfile(ROOT / "Dockerfile")
    image_env = {key: value for key, value in stages[-1].env.items() if key != "PATH"}
    locals_by_role = {"broker": redis_url.split("//", 1)[1].split("/", 1)[0],
                      "mongodb": mongo_url.split("//", 1)[1].rstrip("/"),
                      "s3": s3_endpoint.split("//", 1)[1]}
    hosts = {}
    for name, service in compose["services"].items():
        role = _role(str(service.get("image", "")))
        if role is not None:
            hosts[name] = locals_by_role[role]
    assert set(hosts.values()) == set(locals_by_role.values()), hosts
    redis.Redis.from_url(redis_url).flushall()
    dimension = int(env_file["CONVERSA_OPENAI__EMBEDDING_DIMENSION"])

    with (FakePinecone(dimension=dimension) as pinecone, FakeOpenAI() as openai):
        overrides = {
            "CONVERSA_PINECONE__HOST": pinecone.url,
            "CONVERSA_PINECONE__API_KEY": pinecone.api_key,
            "CONVERSA_OPENAI__BASE_URL": openai.base_url,
            "CONVERSA_OPENAI__API_KEY": openai.api_key,
            "CONVERSA_MONGO_DATABASE": mongo_database_name,
        }
        base_env = {"PATH": program_path({}), "HOME": str(tmp_path), "LANG": "C.UTF-8"}
        services = plan(compose, env_file, hosts=hosts, overrides=overrides,
                        image_env=image_env, entrypoint=stages[-1].entrypoint,
                        base_env=base_env, workdir=tmp_path / "services",
                        argv_filter=_local_size)
        by_name = {service.name: service for service in services}

        with running(services):
            wait_all_healthy(services, HEALTH_TIMEOUT)
            assert {"api", "metrics", "flower", "beat"} <= set(by_name)
            assert sum(name.startswith("worker-") for name in by_name) >= 6

            api = f"http://127.0.0.1:{by_name['api'].local_port(8000)}"
            with httpx.Client(base_url=api, timeout=30) as client:
                key = _api_key(client, by_name["api"].data_dir / "outbox.jsonl")
                auth = {"Authorization": f"Bearer {key}"}
                with SAMPLE.open("rb") as handle:
                    accepted = client.post("/v1/ingestions", headers=auth,
                                           files={"file": (SAMPLE.name, handle, "text/markdown")})
                assert accepted.status_code == 202, accepted.text
                job_id = accepted.json()["job_id"]
                job = {}
                for _ in range(600):
                    job = client.get(f"/v1/ingestions/{job_id}", headers=auth).json()
                    if job["status"] in ("done", "failed"):
                        break
                    time.sleep(0.3)
                assert job["status"] == "done", job
                found = client.post("/v1/search", headers=auth, json={
                    "query": "how do I keep a sourdough starter alive?", "top_k": 3})
                assert found.status_code == 200, found.text
                hits = found.json()["hits"]
                assert hits
                assert hits[0]["source"] == SAMPLE.name

            metrics = httpx.get(
                f"http://127.0.0.1:{by_name['metrics'].local_port(9464)}/metrics", timeout=30)
            assert 'conversa_jobs{status="done"} 1.0' in metrics.text
            assert 'conversa_source_up{source="broker"} 1.0' in metrics.text

            flower = f"http://127.0.0.1:{by_name['flower'].local_port(5555)}"
            user, password = env_file["CONVERSA_FLOWER__BASIC_AUTH"].split(":", 1)
            assert httpx.get(f"{flower}/workers", timeout=30).status_code == 401
            assert httpx.get(f"{flower}/workers", auth=(user, password),
                             timeout=30).status_code == 200

        assert any(request.path == "/vectors/upsert" for request in pinecone.requests())
        for service in services:
            log = service.log_path.read_bytes()
            assert b"Traceback" not in log, (service.name, log[-3000:])
        worker_logs = b"".join(by_name[name].log_path.read_bytes()
                               for name in by_name if name.startswith("worker-"))
        stage_lines = [json.loads(line) for line in worker_logs.splitlines()
                       if line.startswith(b"{") and b'"job_id"' in line]
        assert stage_lines, "workers did not log JSON lines with the job's id"
        assert {line["job_id"] for line in stage_lines} == {job_id}
