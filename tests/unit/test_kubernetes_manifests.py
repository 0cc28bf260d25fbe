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
