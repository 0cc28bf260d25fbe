"""The conversa CLI as a user runs it: up, ingest --wait, search, delete, down."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CONVERSA = str(Path(sys.executable).parent / "conversa")
SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVERSA_")}
    env.update({"CONVERSA_DATA_DIR": str(data_dir), "CONVERSA_LOCAL__FLOWER_PORT": "0"})
    env.update(extra)
    return env


def conversa(env: dict[str, str], *args: str, timeout: float = 300
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CONVERSA, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rpartition(")")[2].split()[0] != "Z"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("stack") / "data"
    env = clean_env(data_dir, CONVERSA_MAX_UPLOAD_BYTES="200000")
    started = conversa(env, "up", timeout=240)
    assert started.returncode == 0, started.stdout + started.stderr
    pids = json.loads((data_dir / "stack.json").read_text())["pids"]
    yield env
    stopped = conversa(env, "down", timeout=180)
    assert stopped.returncode == 0, stopped.stderr
    assert not [name for name, pid in pids.items() if alive(int(pid))]
    assert not (data_dir / "stack.json").exists()


def test_ingest_wait_search_delete(stack):
    ingested = conversa(stack, "ingest", str(SAMPLES), "--wait", "--json")
    assert ingested.returncode == 0, ingested.stderr
    jobs = json_lines(ingested.stdout)
    assert len(jobs) == len(list(SAMPLES.iterdir()))
    assert {job["status"] for job in jobs} == {"done"}
    assert all({"job_id", "document_id", "source", "status", "error"} <= set(j) for j in jobs)

    found = conversa(stack, "search", "keeping a sourdough starter alive", "--json",
                     "--top-k", "3")
    assert found.returncode == 0, found.stderr
    hits = json_lines(found.stdout)
    assert len(hits) == 3
    assert {"document_id", "chunk_index", "score", "text", "source", "keywords"} <= set(hits[0])
    top = hits[0]
    assert "sourdough" in top["source"].lower()
    assert "starter" in top["text"].lower()
    assert top["section"]  # chunks are cut at headings and keep theirs

    status = conversa(stack, "status", jobs[0]["job_id"], "--json")
    assert json.loads(status.stdout)["status"] == "done"

    assert conversa(stack, "delete", top["document_id"]).returncode == 0
    again = conversa(stack, "delete", top["document_id"])
    assert again.returncode == 0, again.stderr
    after = json_lines(conversa(stack, "search", "keeping a sourdough starter alive",
                                "--json", "--top-k", "10").stdout)
    assert top["document_id"] not in {hit["document_id"] for hit in after}


def test_other_tenants_see_nothing(stack, tmp_path):
    doc = tmp_path / "secret.md"
    doc.write_text("# Quarterly plan\n\nThe orchard will plant forty new apple trees. " * 5)
    ingested = conversa(stack, "ingest", str(doc), "--tenant", "acme", "--wait", "--json")
    assert ingested.returncode == 0, ingested.stderr

    theirs = json_lines(conversa(stack, "search", "apple orchard", "--tenant", "acme",
                                 "--json").stdout)
    ours = json_lines(conversa(stack, "search", "apple orchard", "--tenant", "globex",
                               "--json").stdout)
    assert theirs
    assert "apple" in theirs[0]["text"]
    assert ours == []


def test_a_bad_file_fails_its_job_and_the_exit_code(stack, tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "fine.txt").write_text("Bicycle chains want a drop of oil every month. " * 20)
    run = conversa(stack, "ingest", str(tmp_path), "--wait", "--json")

    assert run.returncode == 1
    by_name = {Path(job["source"]).name: job for job in json_lines(run.stdout)}
    assert by_name["empty.txt"]["status"] == "failed"
    assert "empty file" in by_name["empty.txt"]["error"]["message"]
    assert by_name["fine.txt"]["status"] == "done"

    failed = json_lines(conversa(stack, "jobs", "--status", "failed", "--json").stdout)
    assert by_name["empty.txt"]["job_id"] in {job["job_id"] for job in failed}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["ingest", "/no/such/file.txt"], "no such file or folder"),
        (["status", "0123456789abcdef"], "no job"),
        (["worker", "-Q", "nonsense"], "unknown queue"),
        (["search", "   "], "the query is empty"),
    ],
)
def test_errors_are_one_clear_line(stack, args, needle):
    run = conversa(stack, *args)
    assert run.returncode != 0
    assert needle in run.stderr
    assert "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_a_file_over_the_size_limit_is_refused_before_enqueue(stack, tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("word " * 50_000)  # 250 kB, over the 200 kB limit of this stack
    run = conversa(stack, "ingest", str(big))
    assert run.returncode == 1
    assert "file too large" in run.stderr


def test_without_a_stack_the_error_names_the_missing_setting(tmp_path):
    run = conversa(clean_env(tmp_path / "nothing"), "jobs")
    assert run.returncode == 1
    assert "CONVERSA_MONGO_URL is not set" in run.stderr
    assert "conversa up" in run.stderr
