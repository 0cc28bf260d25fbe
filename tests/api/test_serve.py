"""`conversa api` on uvicorn with the outbox notifier, and the SMTP notifier against a small
SMTP server."""

import json
import subprocess
import sys
import time

import httpx
import pytest
import redis

from adapters.email.notifiers import SmtpNotifier
from domain.errors import TransientError
from localstack.servers import free_port, stop_process, wait_for_port
from tests.api.conftest import api_env
from tests.support.fake_smtp import smtp_server

pytestmark = pytest.mark.integration


def test_conversa_api_serves_and_codes_reach_the_outbox(redis_url, mongo_url,  # type: ignore[no-untyped-def]
                                                        mongo_database_name, tmp_path) -> None:
    redis.Redis.from_url(redis_url).flushall()
    env = api_env(redis_url, mongo_url, mongo_database_name, tmp_path)
    port = free_port()
    log = (tmp_path / "api.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "cli", "api", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_for_port("127.0.0.1", port, 60, log_path=tmp_path / "api.log")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            assert client.get("/healthz").json() == {"status": "ok"}
            assert client.get("/readyz").status_code == 200
            assert client.post("/v1/users", json={"email": "ann@example.com"}
                               ).status_code == 202
            outbox = tmp_path / "data" / "outbox.jsonl"
            [message] = [json.loads(line) for line in outbox.read_text().splitlines()]
            assert message["to"] == "ann@example.com"
            assert message["code"] in message["body"]
            issued = client.post("/v1/users/verify", json={"email": "ann@example.com",
                                                           "code": message["code"]}).json()
            keys = client.get("/v1/keys", headers={
                "Authorization": f"Bearer {issued['api_key']}"})
            assert keys.status_code == 200
            assert "server" not in keys.headers
    finally:
        stop_process(proc, timeout=30)
        log.close()
    assert b"Traceback" not in (tmp_path / "api.log").read_bytes()


def test_the_smtp_notifier_sends_the_code() -> None:
    with smtp_server() as smtp:
        SmtpNotifier("127.0.0.1", smtp.port, "ConverSA <no-reply@example.com>",
                     starttls=False).send_verification_code("ann@example.com", "12345678")
    [body] = smtp.received
    assert b"To: ann@example.com" in body
    assert b"12345678" in body


def test_the_smtp_notifier_reports_an_unreachable_server_as_transient() -> None:
    started = time.monotonic()
    with pytest.raises(TransientError, match=r"SMTP at 127\.0\.0\.1"):
        SmtpNotifier("127.0.0.1", free_port(), "x@example.com", starttls=False,
                     timeout_s=2).send_verification_code("ann@example.com", "1")
    assert time.monotonic() - started < 10


@pytest.mark.e2e
@pytest.mark.slow
def test_conversa_up_serves_the_api_and_down_stops_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os

    data_dir = tmp_path / "stack"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVERSA_")}
    env.update({"CONVERSA_DATA_DIR": str(data_dir), "CONVERSA_LOCAL__FLOWER_PORT": "0",
                "CONVERSA_API__PORT": "0"})

    def conversa(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cli", *args], env=env, text=True,
                              capture_output=True, timeout=240, check=False)

    started = conversa("up")
    try:
        assert started.returncode == 0, started.stderr
        stack = json.loads((data_dir / "stack.json").read_text())
        assert f"api      {stack['api_url']}" in started.stdout
        with httpx.Client(base_url=stack["api_url"], timeout=30) as client:
            assert client.get("/healthz").json() == {"status": "ok"}
            assert client.get("/readyz").json()["status"] == "ready"
    finally:
        stopped = conversa("down")
    assert "api" in stopped.stdout
    with pytest.raises(httpx.ConnectError):
        httpx.get(stack["api_url"] + "/healthz", timeout=5)
