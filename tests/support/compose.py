"""docker-compose.yml's own services run as local processes, as the compose file describes them.

No Docker engine runs here, so each service of ours (built from this repository) is started
with its command and the environment compose would give it (``env_file``, then
``environment``), with the infrastructure services' host names pointed at local stand-ins,
its published container ports moved to free local ports, and the image's data folder
(``CONVERSA_DATA_DIR``) moved to a folder of its own. Its healthcheck is then run the way
compose runs it, until it passes, the process exits (which, under ``restart:``, is a restart
loop) or its time is up.
"""

import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from localstack.servers import free_port, log_tail, stop_process

ROOT = Path(__file__).resolve().parents[2]
OUR_IMAGE = "conversa-ingest"


_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}|\$(\w+)")


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Compose's interpolation: ``$$`` is a literal ``$``; ``${NAME}``, ``$NAME``,
    ``${NAME:-default}`` and ``${NAME:?error}`` come from the project's ``.env``."""
    def replace(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name = match[1] or match[4]
        value = variables.get(name)
        operator, argument = match[2], match[3] or ""
        empty = value is None or (operator in (":-", ":?") and value == "")
        if operator in ("-", ":-") and empty:
            return argument
        if operator in ("?", ":?") and empty:
            raise ValueError(f"compose: {name} is required: {argument}")
        return value or ""

    return _VARIABLE.sub(replace, text)


def _interpolated(node: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [_interpolated(item, variables) for item in node]
    if isinstance(node, dict):
        return {key: _interpolated(value, variables) for key, value in node.items()}
    return node


def load_compose(variables: Mapping[str, str],
                 path: Path = ROOT / "docker-compose.yml") -> dict[str, Any]:
    """The compose file with its anchors merged and its variables interpolated."""
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return dict(_interpolated(loaded, variables))


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines as compose reads an env_file (comments and blanks skipped)."""
    pairs = {}
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            name, _, value = stripped.partition("=")
            pairs[name.strip()] = value
    return pairs


def is_ours(service: Mapping[str, Any]) -> bool:
    return "build" in service or str(service.get("image", "")).startswith(OUR_IMAGE)


def service_environment(service: Mapping[str, Any], env_file: Mapping[str, str]
                        ) -> dict[str, str]:
    env = dict(env_file) if service.get("env_file") else {}
    declared = service.get("environment") or {}
    if isinstance(declared, list):
        declared = dict(item.split("=", 1) for item in declared)
    env.update({key: str(value) for key, value in declared.items()})
    return env


def container_ports(service: Mapping[str, Any]) -> list[int]:
    ports = []
    for entry in service.get("ports", []) + service.get("expose", []):
        ports.append(int(str(entry).rsplit(":", 1)[-1].split("/")[0]))
    return ports


@dataclass
class LocalService:
    name: str
    argv: list[str]
    env: dict[str, str]
    healthcheck: list[str]
    data_dir: Path
    log_path: Path
    check_timeout: float = 30.0
    proc: "subprocess.Popen[bytes] | None" = None
    ports: dict[int, int] = field(default_factory=dict)

    def local_port(self, container_port: int) -> int:
        return self.ports[container_port]


def _rewrite(text: str, hosts: Mapping[str, str], ports: Mapping[int, int],
             paths: Mapping[str, str]) -> str:
    for host, local in hosts.items():
        text = re.sub(rf"(?<=//){re.escape(host)}:\d+", local, text)
    for container, local_port in ports.items():
        text = re.sub(rf"(?<![\d.]){container}(?!\d)", str(local_port), text)
    if paths:  # one pass, so a replacement is never rewritten again
        pattern = "|".join(re.escape(path) for path in sorted(paths, key=len, reverse=True))
        text = re.sub(pattern, lambda match: paths[match[0]], text)
    return text


def plan(compose: Mapping[str, Any], env_file: Mapping[str, str], *, hosts: Mapping[str, str],
         overrides: Mapping[str, str], image_env: Mapping[str, str], entrypoint: list[str],
         base_env: Mapping[str, str], workdir: Path,
         argv_filter: Any = None) -> list[LocalService]:
    """One LocalService per service of ours, ready to start."""
    image_data_dir = image_env["CONVERSA_DATA_DIR"]
    planned = []
    for name, service in compose["services"].items():
        if not is_ours(service):
            continue
        data_dir = workdir / name
        data_dir.mkdir(parents=True)
        ports = {port: free_port() for port in container_ports(service)}
        paths = {image_data_dir: str(data_dir), "/tmp/": f"{data_dir}/tmp-"}
        # Container paths are rewritten in what the image and compose set, never in this
        # machine's own values (a checkout under /tmp keeps its PATH).
        declared = {**image_env, **service_environment(service, env_file)}
        env = {**base_env,
               **{key: _rewrite(value, hosts, {}, paths) for key, value in declared.items()}}
        env.update(overrides)
        env["CONVERSA_DATA_DIR"] = str(data_dir)
        command = service.get("command") or []
        argv = list(service.get("entrypoint") or entrypoint) + list(command)
        argv = [_rewrite(word, hosts, ports, paths) for word in argv]
        if argv_filter is not None:
            argv = argv_filter(argv)
        health = service.get("healthcheck") or {}
        test = list(health.get("test") or [])
        if test[:1] == ["CMD-SHELL"]:
            check = ["sh", "-c", _rewrite(test[1], hosts, ports, paths)]
        elif test[:1] == ["CMD"]:
            check = [_rewrite(word, hosts, ports, paths) for word in test[1:]]
        else:
            check = []
        planned.append(LocalService(name=name, argv=argv, env=env, healthcheck=check,
                                    data_dir=data_dir, log_path=workdir / f"{name}.log",
                                    ports=ports,
                                    check_timeout=_seconds(health.get("timeout"), 30.0)))
    return planned


class Unhealthy(AssertionError):
    pass


def _seconds(duration: str | None, default: float) -> float:
    """A compose duration (``20s``, ``1m30s``) in seconds."""
    if not duration:
        return default
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * units[u] for n, u in re.findall(r"([\d.]+)(ms|h|m|s)", duration))


def wait_all_healthy(services: list[LocalService], timeout: float) -> None:
    """Run every healthcheck (each bounded by its own ``timeout``, as compose does) until all
    pass. A process that exits fails at once: under ``restart:`` it is a restart loop."""
    pending = list(services)
    last: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for service in services:
            assert service.proc is not None
            if service.proc.poll() is not None:
                raise Unhealthy(
                    f"{service.name} exited with {service.proc.returncode} (under compose's "
                    f"restart policy: a restart loop):\n{log_tail(service.log_path)}")
        for service in list(pending):
            if not service.healthcheck:
                raise Unhealthy(f"{service.name} has no healthcheck")
            try:
                check = subprocess.run(service.healthcheck, env=service.env,
                                       cwd=service.data_dir, capture_output=True, text=True,
                                       timeout=service.check_timeout, check=False)
            except subprocess.TimeoutExpired:
                last[service.name] = f"timed out after {service.check_timeout:.0f} s"
                continue
            if check.returncode == 0:
                pending.remove(service)
            else:
                last[service.name] = (check.stdout + check.stderr)[-1500:]
        time.sleep(1.0)
    if pending:
        raise Unhealthy("\n".join(
            f"{service.name}'s healthcheck {shlex.join(service.healthcheck)} did not pass in "
            f"{timeout:.0f} s; last: {last.get(service.name, '')}\n"
            f"log:\n{log_tail(service.log_path, 1500)}" for service in pending))


@contextmanager
def running(services: list[LocalService]) -> Iterator[list[LocalService]]:
    """Start every service; stop them all when the block ends."""
    with ExitStack() as stack:
        for service in services:
            with service.log_path.open("wb") as log:
                service.proc = subprocess.Popen(
                    service.argv, env=service.env, cwd=service.data_dir, stdout=log,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            stack.callback(stop_process, service.proc, 30)
        yield services


def program_path(env: Mapping[str, str]) -> str:
    """PATH for the local processes: this test run's virtualenv first, as the image's is."""
    return f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
