"""The local-server launchers (localstack/servers.py) against real valkey-server and secantusd."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from pymongo import MongoClient

from localstack.servers import (
    SECANTUSDB_MISSING,
    ServerError,
    free_port,
    start_mongo,
    start_valkey,
    stop_process,
    wait_for_port,
)

pytestmark = pytest.mark.integration


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def group_gone(pgid: int, within: float = 5.0) -> bool:
    """Whether process group ``pgid`` is empty, allowing ``within`` seconds for the reaping of
    members that were orphaned when their parent died."""
    deadline = time.monotonic() + within
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


@contextmanager
def valkey_client(port: int) -> Iterator["redis.Redis[bytes]"]:
    client: redis.Redis[bytes] = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
    try:
        yield client
    finally:
        client.close()


@contextmanager
def mongo_client(port: int) -> Iterator[MongoClient[dict[str, object]]]:
    client: MongoClient[dict[str, object]] = MongoClient(
        f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=30_000)
    try:
        yield client
    finally:
        client.close()


# -- valkey -----------------------------------------------------------------------------------

def test_valkey_answers_ping_with_the_asked_configuration(tmp_path: Path) -> None:
    port = free_port()
    proc = start_valkey(port, tmp_path / "data", tmp_path / "valkey.log")
    try:
        with valkey_client(port) as client:
            assert client.ping() is True
            config = client.config_get("*")
        assert config["bind"] == "127.0.0.1"
        assert config["protected-mode"] == "yes"
        assert config["appendonly"] == "yes"
        assert config["save"] == ""
        assert config["daemonize"] == "no"
        assert Path(config["dir"]) == (tmp_path / "data").resolve()
        assert proc.poll() is None
    finally:
        assert stop_process(proc) == 0
    log = (tmp_path / "valkey.log").read_text()
    assert "Ready to accept connections" in log


def test_valkey_data_survives_a_restart_with_aof(tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "valkey.log"
    port = free_port()
    proc = start_valkey(port, data, log, appendonly=True)
    try:
        with valkey_client(port) as client:
            client.set("greeting", "hello")
            client.rpush("queue", "a", "b", "c")
            client.hset("job:1", mapping={"status": "stored", "attempts": "2"})
    finally:
        stop_process(proc)
    assert any(path.suffix == ".aof" for path in (data / "appendonlydir").iterdir())

    port = free_port()  # a new port too: only the folder carries the data over
    proc = start_valkey(port, data, log, appendonly=True)
    try:
        with valkey_client(port) as client:
            assert client.get("greeting") == b"hello"
            assert client.lrange("queue", 0, -1) == [b"a", b"b", b"c"]
            assert client.hgetall("job:1") == {b"status": b"stored", b"attempts": b"2"}
    finally:
        stop_process(proc)


def test_valkey_without_aof_keeps_nothing_across_a_restart(tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "valkey.log"
    port = free_port()
    proc = start_valkey(port, data, log, appendonly=False)
    try:
        with valkey_client(port) as client:
            client.set("greeting", "hello")
    finally:
        stop_process(proc)
    proc = start_valkey(port, data, log, appendonly=False)
    try:
        with valkey_client(port) as client:
            assert client.dbsize() == 0
    finally:
        stop_process(proc)
    assert not (data / "dump.rdb").exists()


def test_valkey_on_a_taken_port_fails_fast_with_its_log(tmp_path: Path) -> None:
    port = free_port()
    first = start_valkey(port, tmp_path / "one", tmp_path / "one.log", appendonly=False)
    try:
        started = time.monotonic()
        with pytest.raises(ServerError) as caught:
            start_valkey(port, tmp_path / "two", tmp_path / "two.log", appendonly=False)
        assert time.monotonic() - started < 10
        assert "exited" in str(caught.value)
        assert "Address already in use" in str(caught.value)
        with valkey_client(port) as client:  # the first one is untouched
            assert client.ping() is True
    finally:
        stop_process(first)


# -- secantusd --------------------------------------------------------------------------------

def test_secantusd_accepts_inserts_and_finds_and_keeps_them(tmp_path: Path) -> None:
    storage, log = tmp_path / "mongo", tmp_path / "secantusd.log"
    port = free_port()
    proc = start_mongo(port, storage, log)
    try:
        with mongo_client(port) as client:
            collection = client["conversa"]["things"]
            inserted = collection.insert_one({"name": "first", "n": 1})
            found = collection.find_one({"_id": inserted.inserted_id})
            assert found is not None
            assert found["name"] == "first"
    finally:
        assert stop_process(proc) is not None
    assert "listening" in log.read_text()

    port = free_port()
    proc = start_mongo(port, storage, log)
    try:
        with mongo_client(port) as client:
            assert client["conversa"]["things"].count_documents({"name": "first"}) == 1
    finally:
        stop_process(proc)


def test_start_mongo_without_secantusdb_says_how_to_install_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ServerError) as caught:
        start_mongo(free_port(), tmp_path / "mongo", tmp_path / "secantusd.log")
    assert str(caught.value) == SECANTUSDB_MISSING


# -- stopping ---------------------------------------------------------------------------------

@pytest.mark.parametrize("by_pid", [False, True])
def test_stop_process_leaves_no_server_behind(tmp_path: Path, by_pid: bool) -> None:
    valkey = start_valkey(free_port(), tmp_path / "v", tmp_path / "v.log", appendonly=False)
    mongo = start_mongo(free_port(), tmp_path / "m", tmp_path / "m.log")
    for proc in (valkey, mongo):
        assert os.getpgid(proc.pid) == proc.pid  # its own group
        stop_process(proc.pid if by_pid else proc, timeout=30)
        proc.wait(timeout=5)  # reaped (already, when stopped by Popen)
        assert gone(proc.pid)
        assert group_gone(proc.pid)


def test_stop_process_kills_a_group_that_ignores_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "stubborn.log"
    script = "trap '' TERM; sleep 300 & echo started; wait"
    with log.open("ab") as out:
        proc = subprocess.Popen(["sh", "-c", script], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + 30
    while "started" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    code = stop_process(proc, timeout=1.0)
    assert code == -signal.SIGKILL
    assert time.monotonic() - started < 10
    assert group_gone(proc.pid)  # the sleep child went too


def test_stop_process_of_a_finished_process_is_not_an_error() -> None:
    proc = subprocess.Popen(["true"], start_new_session=True)
    proc.wait(timeout=10)
    assert stop_process(proc) == 0
    assert stop_process(proc.pid) is None


def test_wait_for_port_fails_fast_with_the_log_tail_when_the_process_exits(
        tmp_path: Path) -> None:
    log = tmp_path / "broken.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(["sh", "-c", "echo 'fatal: broken config' >&2; exit 3"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    started = time.monotonic()
    with pytest.raises(ServerError) as caught:
        wait_for_port("127.0.0.1", free_port(), 30, proc, log_path=log)
    assert time.monotonic() - started < 5
    assert "code 3" in str(caught.value)
    assert "fatal: broken config" in str(caught.value)


def test_wait_for_port_times_out_when_nothing_listens() -> None:
    started = time.monotonic()
    with pytest.raises(ServerError) as caught:
        wait_for_port("127.0.0.1", free_port(), 0.5)
    assert time.monotonic() - started < 5
    assert "did not answer" in str(caught.value)
