"""deploy/ (Kubernetes and KEDA) parsed and checked against the code's one declaration of
queues (adapters/celery/topology.py), the settings and the Celery configuration."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from adapters.celery.topology import ALL_QUEUES, resolve_queues
from pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


@pytest.fixture(scope="module")
def manifests() -> list[dict]:
    docs = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


def of_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    found = {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}
    assert len(found) == sum(doc["kind"] == kind for doc in docs), f"duplicate {kind} names"
    return found


def worker_container(deployment: dict) -> dict:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return container


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def workers(docs) -> dict[str, dict]:
    """Worker Deployments by the one queue each consumes."""
    by_queue = {}
    for deployment in of_kind(docs, "Deployment").values():
        args = worker_container(deployment).get("args", [])
        if args[:1] == ["worker"]:
            [queue] = resolve_queues(flag(args, "-Q"))
            assert queue not in by_queue, f"two Deployments consume {queue}"
            by_queue[queue] = deployment
    return by_queue


def test_one_worker_deployment_per_queue_and_nothing_else(manifests):
    by_queue = workers(manifests)
    assert sorted(by_queue) == sorted(ALL_QUEUES)
    for queue, deployment in by_queue.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["conversa/queue"] == queue
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert all(labels[key] == value for key, value in selector.items())


def test_one_scaled_object_per_queue_on_its_redis_list(manifests):
    by_queue = workers(manifests)
    scaled = of_kind(manifests, "ScaledObject")
    auth = of_kind(manifests, "TriggerAuthentication")
    targets = {}
    for name, scaled_object in scaled.items():
        spec = scaled_object["spec"]
        target = spec["scaleTargetRef"]["name"]
        [trigger] = spec["triggers"]
        assert trigger["type"] == "redis"
        queue = trigger["metadata"]["listName"]
        assert by_queue[queue]["metadata"]["name"] == target == name
        assert trigger["authenticationRef"]["name"] in auth
        concurrency = int(flag(worker_container(by_queue[queue])["args"], "-c"))
        assert int(trigger["metadata"]["listLength"]) == concurrency
        # The prefetch caveat: running work is not on the list, so never scale to zero.
        assert spec["minReplicaCount"] >= 1
        assert spec["maxReplicaCount"] >= spec["minReplicaCount"]
        targets[queue] = target
    assert sorted(targets) == sorted(ALL_QUEUES)


def test_celery_prefetches_one_message_per_process_and_acks_late(tmp_path):
    """What makes the list length a true backlog (read in a fresh interpreter)."""
    code = ("import json, celeryconfig as c; print(json.dumps([c.worker_prefetch_multiplier, "
            "c.task_acks_late, c.task_reject_on_worker_lost]))")
    env = {"CONVERSA_BROKER_URL": "redis://127.0.0.1:1/0", "PATH": "/usr/bin:/bin",
           "CONVERSA_DATA_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert json.loads(out.stdout) == [1, True, True]


def test_workers_stop_gracefully_and_are_probed_for_consumption(manifests):
    config = of_kind(manifests, "ConfigMap")["conversa-config"]["data"]
    settings = Settings(worker={
        key.removeprefix("CONVERSA_WORKER__").lower(): value
        for key, value in config.items() if key.startswith("CONVERSA_WORKER__")})
    for deployment in workers(manifests).values():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] > settings.worker.time_limit
        container = worker_container(deployment)
        assert container["livenessProbe"]["exec"]["command"][:2] == ["conversa", "probe"]
        data_dir = next(e["value"] for e in container["env"]
                        if e["name"] == "CONVERSA_DATA_DIR")
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts[data_dir] in {v["name"] for v in pod["volumes"]}


def test_settings_in_the_config_map_are_real_settings(manifests):
    config = of_kind(manifests, "ConfigMap")["conversa-config"]["data"]
    fields = Settings.model_fields
    for key in config:
        top, _, nested = key.removeprefix("CONVERSA_").lower().partition("__")
        assert top in fields, key
        if nested:
            assert nested in fields[top].annotation.model_fields, key


def test_every_config_reference_is_defined_here_or_is_the_secret(manifests):
    config_maps = set(of_kind(manifests, "ConfigMap"))
    for deployment in of_kind(manifests, "Deployment").values():
        for source in worker_container(deployment).get("envFrom", []):
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in config_maps
            else:
                assert source["secretRef"]["name"] == "conversa-secrets"


# -- Sizing, security and schema checks ---------------------------------------------------------

#: Memory of a worker's main process (Celery, kombu, our imports) before any pool process.
MAIN_PROCESS_MIB = 256
#: How far one task can take a pool process past ``max_memory_per_child`` before Celery
#: replaces it (it checks only after the task): the largest allowed PDF parses at ~380 MiB
#: (bench/parse_memory.py); the other stages hold one document's chunks or vectors.
TASK_PEAK_MIB = {"conversa.extract": 400}
DEFAULT_TASK_PEAK_MIB = 128
#: Custom resources with no schema among Kubernetes' own (KEDA's CRDs).
CUSTOM_KINDS = {"ScaledObject", "TriggerAuthentication"}
NAMESPACE = "conversa"
_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6,
          "G": 10**9}


def quantity_bytes(value: str | int) -> int:
    text = str(value)
    for suffix, factor in _UNITS.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


def cpu_cores(value: str | int) -> float:
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def pod_specs(docs) -> dict[str, dict]:
    return {name: d["spec"]["template"]["spec"] for name, d in of_kind(docs, "Deployment").items()}


def env_value(container: dict, config: dict, name: str) -> str | None:
    for entry in container.get("env", []):
        if entry["name"] == name and "value" in entry:
            return str(entry["value"])
    return config.get(name)


def test_worker_memory_limits_hold_every_pool_process_at_its_recycle_limit(manifests):
    config = of_kind(manifests, "ConfigMap")["conversa-config"]["data"]
    default_kb = Settings.model_fields["worker"].default.max_memory_per_child_kb
    for queue, deployment in workers(manifests).items():
        container = worker_container(deployment)
        concurrency = int(flag(container["args"], "-c"))
        child_kb = int(env_value(container, config, "CONVERSA_WORKER__MAX_MEMORY_PER_CHILD_KB")
                       or default_kb)
        peak = TASK_PEAK_MIB.get(queue, DEFAULT_TASK_PEAK_MIB)
        needed = MAIN_PROCESS_MIB * 2**20 + concurrency * (child_kb * 1024 + peak * 2**20)
        limit = quantity_bytes(container["resources"]["limits"]["memory"])
        assert limit >= needed, (
            f"{queue}: {concurrency} processes x ({child_kb} KB + {peak} MiB) + "
            f"{MAIN_PROCESS_MIB} MiB = {needed / 2**20:.0f} MiB, above the pod's "
            f"{limit / 2**20:.0f} MiB: the kernel kills the pod before Celery recycles a child")
        # ...and not so generous that the recycle limit never matters.
        assert limit <= needed * 1.5, f"{queue}: {limit / 2**20:.0f} MiB is far above need"
        # A child must fit its limit after start-up, or it is replaced after every task.
        assert child_kb * 1024 >= 250 * 10**6, queue


def test_every_container_requests_cpu_and_memory_within_a_memory_limit(manifests):
    for name, pod in pod_specs(manifests).items():
        for container in pod["containers"]:
            resources = container["resources"]
            assert cpu_cores(resources["requests"]["cpu"]) > 0, name
            request = quantity_bytes(resources["requests"]["memory"])
            assert 0 < request <= quantity_bytes(resources["limits"]["memory"]), name


def test_every_pod_runs_non_root_on_a_read_only_root_filesystem(manifests):
    from tests.support.image import ROOT as REPO
    from tests.support.image import parse_dockerfile

    _, stages = parse_dockerfile(REPO / "Dockerfile")
    image_user = int(str(stages[-1].user).split(":")[0])
    image_data_dir = stages[-1].env["CONVERSA_DATA_DIR"]
    for name, pod in pod_specs(manifests).items():
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert security["runAsUser"] == image_user, name
        assert security["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["enableServiceLinks"] is False, name  # no CONVERSA_* from Services
        volumes = {volume["name"] for volume in pod.get("volumes", [])}
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert set(mounts.values()) <= volumes, name
            assert "/tmp" in mounts, f"{name}: /tmp must be writable"
            data_dir = env_value(container, {}, "CONVERSA_DATA_DIR") or image_data_dir
            writes_data = container.get("args", [""])[0] in ("worker", "api") or any(
                "beat" in word for word in container.get("command", []))
            if writes_data:
                assert data_dir in mounts, f"{name}: {data_dir} must be writable"
            for word in container.get("command", []) + container.get("args", []):
                if word.startswith("/") and not word.startswith("/var/lib/conversa"):
                    pytest.fail(f"{name} writes to {word} on the read-only root filesystem")


def test_one_disruption_budget_per_worker_pool_and_for_the_api(manifests):
    budgets = of_kind(manifests, "PodDisruptionBudget")
    covered = set()
    for deployment in of_kind(manifests, "Deployment").values():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [name for name, budget in budgets.items()
                    if all(labels.get(k) == v
                           for k, v in budget["spec"]["selector"]["matchLabels"].items())]
        component = labels["app.kubernetes.io/component"]
        if component in ("worker", "api"):
            assert len(matching) == 1, (deployment["metadata"]["name"], matching)
            covered.add(deployment["metadata"]["name"])
    assert len(covered) == len(workers(manifests)) + 1
    for budget in budgets.values():  # a one-pod pool must still be drainable
        assert budget["spec"].get("maxUnavailable", 0) >= 1 or (
            budget["spec"]["minAvailable"] < of_kind(manifests, "Deployment")[
                budget["metadata"]["name"]]["spec"]["replicas"])


def test_the_api_is_served_by_its_deployment_and_service(manifests):
    api = of_kind(manifests, "Deployment")["conversa-api"]
    [container] = api["spec"]["template"]["spec"]["containers"]
    assert container["args"][:1] == ["api"]
    port = int(flag(container["args"], "--port"))
    assert container["ports"][0]["containerPort"] == port
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    service = of_kind(manifests, "Service")["conversa-api"]
    labels = api["spec"]["template"]["metadata"]["labels"]
    assert all(labels[k] == v for k, v in service["spec"]["selector"].items())
    assert service["spec"]["ports"][0]["targetPort"] == port


def test_everything_lives_in_the_one_namespace(manifests):
    [namespace] = of_kind(manifests, "Namespace")
    assert namespace == NAMESPACE
    for doc in manifests:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE, (doc["kind"],
                                                               doc["metadata"]["name"])


def test_every_manifest_is_valid_against_the_kubernetes_schemas(manifests):
    """Offline, strict (unknown fields fail), against the schemas kubernetes-validate ships."""
    import kubernetes_validate

    version = kubernetes_validate.latest_version()
    skipped = set()
    for doc in manifests:
        if doc["kind"] in CUSTOM_KINDS:
            skipped.add(doc["kind"])
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']}: {exc.message} at "
                        f"{'/'.join(str(p) for p in exc.path)}")
    assert skipped == CUSTOM_KINDS
