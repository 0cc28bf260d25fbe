"""The CLI's conventions (cli/main.py's docstring), on the installed ``conversa`` command run
as a subprocess: usage errors exit 2 with the usage line and a hint, ``--version`` and
``-h``, shell completion, choices in help, ``--json`` on every command that prints data, and
one meaning of ``--tenant`` (``--all-tenants`` where an operator wants every tenant)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from localstack.servers import free_port

pytestmark = [pytest.mark.e2e]

CONVERSA = str(Path(sys.executable).parent / "conversa")


def bare_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVERSA_", "_CONVERSA"))}
    env.update({"CONVERSA_DATA_DIR": str(data_dir), "COLUMNS": "200"})
    env.update(extra)
    return env


def conversa(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CONVERSA, *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.mark.parametrize(("args", "error"), [
    (["jobs", "--no-such-option"], "No such option: --no-such-option"),
    (["ingest"], "Missing argument"),
    (["jobs", "--status", "sideways"], "'sideways' is not one of"),
    (["search", "pears", "--ranking", "loudest"], "'loudest' is not one of"),
    (["retry", "--failed", "--stage", "nowhere"], "'nowhere' is not one of"),
    (["retry", "--stage", "extract"], "--failed"),
    (["jobs", "--tenant", "acme", "--all-tenants"], "not both"),
    (["no-such-command"], "No such command"),
])
def test_a_usage_error_prints_the_usage_line_and_a_hint_and_exits_2(tmp_path, args, error):
    run = conversa(bare_env(tmp_path), *args)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.startswith("Usage: conversa"), run.stderr
    assert "-h' for help." in run.stderr
    assert error in " ".join(run.stderr.replace("│", " ").split())
    assert "Traceback" not in run.stderr
    assert "unexpected" not in run.stderr


def test_version_prints_the_installed_version(tmp_path):
    from importlib.metadata import version

    run = conversa(bare_env(tmp_path), "--version")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"conversa {version('conversa-ingest')}"


@pytest.mark.parametrize("command", ["jobs", "retry", "doctor", "probe", "ingest", "search"])
def test_dash_h_is_help_on_the_root_and_every_command(tmp_path, command):
    root = conversa(bare_env(tmp_path), "-h")
    assert root.returncode == 0
    assert "Usage: conversa" in root.stdout
    assert command in root.stdout
    one = conversa(bare_env(tmp_path), command, "-h")
    assert one.returncode == 0, one.stderr
    assert f"Usage: conversa {command}" in one.stdout


@pytest.mark.parametrize(("command", "choices"), [
    (["jobs"], "queued|stored|recorded|extracted|embedded|indexed|done|failed"),
    (["search", "x"], "hybrid|vector|fused"),
    (["retry"], "store|record|extract|embed|index"),
])
def test_help_lists_the_choices(tmp_path, command, choices):
    run = conversa(bare_env(tmp_path), *command, "-h")
    assert run.returncode == 0, run.stderr
    assert choices in "".join(run.stdout.replace("│", " ").split())


def from_bash(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI run by an interactive user's bash: Typer finds the shell among the process's
    parents (a test run with no shell above it, under setsid or nohup, has none), so bash
    stays the parent (``; exit $?`` keeps it from exec'ing the command)."""
    return subprocess.run(["/bin/bash", "-c", '"$0" "$@"; exit $?', CONVERSA, *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_shell_completion_can_be_installed_and_completes(tmp_path):
    env = bare_env(tmp_path, SHELL="/bin/bash", HOME=str(tmp_path))
    script = from_bash(env, "--show-completion")
    assert script.returncode == 0, script.stderr
    assert "_CONVERSA_COMPLETE" in script.stdout
    installed = from_bash(env, "--install-completion")
    assert installed.returncode == 0, installed.stderr
    assert "_CONVERSA_COMPLETE" in (tmp_path / ".bashrc").read_text() + "".join(
        p.read_text() for p in tmp_path.rglob("conversa*") if p.is_file())

    def complete(words: str) -> list[str]:
        run = subprocess.run([CONVERSA], capture_output=True, text=True, timeout=60,
                             env={**env, "_CONVERSA_COMPLETE": "complete_bash",
                                  "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)})
        return run.stdout.split()

    assert complete("conversa reco") == ["reconcile"]
    assert complete("conversa jobs --status fa") == ["failed"]


def test_doctor_and_probe_print_json(tmp_path):
    env = bare_env(tmp_path / "data",
                   CONVERSA_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0",
                   CONVERSA_MONGO_URL=f"mongodb://127.0.0.1:{free_port()}/",
                   CONVERSA_MONGO_TIMEOUT_MS="300")
    doctor = conversa(env, "doctor", "--json")
    assert doctor.returncode == 1  # nothing is running
    checks = json_lines(doctor.stdout)
    assert [c["check"] for c in checks] == ["settings", "broker", "mongodb", "objects",
                                            "vectors", "embedder", "keywords"]
    assert checks[0]["ok"] is True
    assert checks[1]["ok"] is False
    assert {"check", "ok", "detail", "seconds"} == set(checks[1])

    probe = conversa(env, "probe", "--json")
    assert probe.returncode == 1
    [verdict] = json_lines(probe.stdout)
    assert verdict["ok"] is False
    assert "no running worker" in verdict["reason"]


@pytest.mark.integration
def test_one_meaning_of_tenant_and_json_on_the_data_commands(env, tmp_path):
    env = {**env, "COLUMNS": "200"}
    doc = tmp_path / "orchard.txt"
    doc.write_text("The orchard will plant forty new apple trees next spring. " * 10)
    theirs = json_lines(conversa(env, "ingest", str(doc), "--tenant", "acme", "--json").stdout)
    ours = json_lines(conversa(env, "ingest", str(doc), "--json").stdout)  # default tenant
    assert [job["tenant"] for job in theirs + ours] == ["acme", "default"]

    def listed(*args: str) -> set[str]:
        run = conversa(env, "jobs", "--json", *args)
        assert run.returncode == 0, run.stderr
        return {job["job_id"] for job in json_lines(run.stdout)}

    assert listed() == {ours[0]["job_id"]}
    assert listed("--tenant", "acme") == {theirs[0]["job_id"]}
    assert listed("--all-tenants") == {theirs[0]["job_id"], ours[0]["job_id"]}

    for command in (["queues"], ["reconcile", "--older-than", "3600"],
                    ["retry", "--failed", "--all-tenants"]):
        run = conversa(env, *command, "--json")
        assert run.returncode == 0, run.stderr
        lines = json_lines(run.stdout)  # every line is one JSON object (none for no data)
        assert all(isinstance(line, dict) for line in lines)
    queues = json_lines(conversa(env, "queues", "--json").stdout)
    assert {"queue", "stage", "waiting", "unacked", "consumers"} <= set(queues[0])

    refused = conversa(env, "retry", theirs[0]["job_id"])  # another tenant's job
    assert refused.returncode == 1
    assert "no job" in refused.stderr
