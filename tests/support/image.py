"""The image's file set, assembled the way `docker build` assembles it, without Docker.

The build context is the repository filtered by ``.dockerignore``; each ``COPY`` of the build
stage copies from that context into a root folder, relative to the stage's ``WORKDIR``; the
code is then installed with pip from the folder the Dockerfile installs it from. A folder the
Dockerfile forgets to copy (or ``.dockerignore`` leaves out) is missing from the result, so
running ``conversa`` from it fails the same way the image would.
"""

import fnmatch
import json
import os
import shlex
import shutil
import subprocess
import sysconfig
import venv
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Stage:
    name: str | None
    base: str
    #: (sources, (workdir, destination as written)) of every COPY from the build context.
    copies: list[tuple[list[str], tuple[PurePosixPath, str]]] = field(default_factory=list)
    #: (workdir, command) of every RUN.
    runs: list[tuple[PurePosixPath, str]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    workdir: PurePosixPath = field(default_factory=lambda: PurePosixPath("/"))
    user: str | None = None
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    #: Every COPY and RUN in order, as (keyword, its arguments).
    steps: list[tuple[str, str]] = field(default_factory=list)


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        joined.append(pending + stripped)
        pending = ""
    pairs = []
    for entry in joined:
        keyword, _, rest = entry.partition(" ")
        pairs.append((keyword.upper(), rest.strip()))
    return pairs


def _words(arguments: str) -> list[str]:
    if arguments.startswith("["):
        return list(json.loads(arguments))
    return shlex.split(arguments)


def parse_dockerfile(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """The global ARG defaults and the stages, in order."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, rest in _instructions(path.read_text()):
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            if stages:
                stages[-1].env.setdefault(name, _expand(default, {**args, **stages[-1].env}))
            else:
                args[name] = default
            continue
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(name=name, base=_expand(words[0], args)))
            continue
        stage = stages[-1]
        scope = {**args, **stage.env}
        if keyword in ("COPY", "RUN"):
            stage.steps.append((keyword, _expand(rest, scope)))
        if keyword == "WORKDIR":
            stage.workdir = stage.workdir / _expand(rest, scope)
        elif keyword == "ENV":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                stage.env[name] = _expand(value, {**args, **stage.env})
        elif keyword == "COPY":
            words = _words(rest)
            if any(word.startswith("--from") for word in words):
                continue
            words = [word for word in words if not word.startswith("--")]
            stage.copies.append(([_expand(w, scope) for w in words[:-1]],
                                 (stage.workdir, _expand(words[-1], scope))))
        elif keyword == "RUN":
            stage.runs.append((stage.workdir, _expand(rest, scope)))
        elif keyword == "USER":
            stage.user = rest
        elif keyword == "ENTRYPOINT":
            stage.entrypoint = _words(rest)
        elif keyword == "CMD":
            stage.cmd = _words(rest)
    return args, stages


def _expand(value: str, scope: dict[str, str]) -> str:
    for name, replacement in sorted(scope.items(), key=lambda item: -len(item[0])):
        value = value.replace("${" + name + "}", replacement).replace("$" + name, replacement)
    return value


def ignored(relative: str, patterns: list[str]) -> bool:
    """Whether ``.dockerignore`` keeps a path out of the context (the last match wins; a
    folder's exclusion covers what is inside it)."""
    parts = relative.split("/")
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.rstrip("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if body.startswith("**/"):
            tail = body[3:]
            hit = any(fnmatch.fnmatchcase(part, tail) for part in parts)
        else:
            hit = any(fnmatch.fnmatchcase(prefix, body) for prefix in prefixes)
        if hit:
            result = not negate
    return result


def build_context(destination: Path) -> Path:
    """The repository as `docker build .` sends it: every file .dockerignore lets through."""
    ignore_file = ROOT / ".dockerignore"
    patterns = [line.strip() for line in ignore_file.read_text().splitlines()
                if line.strip() and not line.strip().startswith("#")]
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for relative in tracked.splitlines():
        if ignored(relative, patterns) or not (ROOT / relative).is_file():
            continue
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)
    return destination


def copy_stage_files(stage: Stage, context: Path, rootfs: Path) -> None:
    """Carry out the stage's COPY instructions from the context into ``rootfs``: a folder's
    contents go into the destination; files go into it when it names a folder (a trailing
    ``/``, ``.``, or several sources), else to that file name."""
    for sources, (workdir, raw) in stage.copies:
        destination = rootfs / str(workdir / raw).lstrip("/")
        names_folder = raw.endswith("/") or raw in (".", "./") or len(sources) > 1
        for source in sources:
            origin = context / source.rstrip("/")
            if not origin.exists():
                raise FileNotFoundError(f"COPY {source}: not in the build context")
            if origin.is_dir():
                shutil.copytree(origin, destination, dirs_exist_ok=True)
                continue
            target = destination / origin.name if names_folder else destination
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)


def code_install_folder(stage: Stage) -> PurePosixPath:
    """The folder the stage installs the project from (``pip install --no-deps .``)."""
    for workdir, command in stage.runs:
        words = shlex.split(command.split("&&")[0])
        if words[:2] == ["pip", "install"] and "." in words and "--no-deps" in words:
            return workdir
    raise AssertionError("the build stage never installs the project with pip")


def image_venv(rootfs: Path, stage: Stage, where: Path) -> Path:
    """A virtualenv holding the project installed from the copied files only.

    The dependencies are this test run's own (a ``.pth`` line adds their site-packages without
    running that folder's ``.pth`` files, so the editable install of the checkout stays
    invisible); the project itself is built and installed from ``rootfs`` as the Dockerfile
    does, so only what was copied is importable.
    """
    venv.EnvBuilder(with_pip=True, clear=True).create(where)
    python = where / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print("
                           "sysconfig.get_paths()['purelib'])"], capture_output=True,
                          text=True, check=True).stdout.strip()
    Path(site, "_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    source = rootfs / str(code_install_folder(stage)).lstrip("/")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps",
                    "--disable-pip-version-check", str(source)], check=True,
                   capture_output=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return where


def runtime_env(stage: Stage, venv_dir: Path, data_dir: Path) -> dict[str, str]:
    """The final stage's environment, with its paths pointing at this test's folders."""
    env = {"PATH": f"{venv_dir / 'bin'}:/usr/bin:/bin", "HOME": str(data_dir),
           "LANG": "C.UTF-8"}
    for name, value in stage.env.items():
        if name == "PATH":
            continue
        env[name] = str(data_dir) if value == str(stage.workdir) else value
    return env
