"""What the Redis broker holds, per queue: messages waiting, and messages a worker has taken
but not yet acknowledged (running, or held for a retry countdown).

Reads kombu's Redis layout directly (one round trip per queue, no consumer is started):
a queue is a list named after it, plus one list per priority step (``<queue>\\x06\\x16<n>``);
messages taken by a worker sit in the ``unacked`` hash as ``[message, exchange, routing_key]``
until acknowledged. Celery routes each stage to a queue whose routing key is its name.
Reference: https://docs.celeryq.dev/projects/kombu/en/stable/reference/kombu.transport.redis.html
"""

import base64
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import redis

from adapters.celery.topology import ALL_QUEUES, STAGE_QUEUES
from domain.errors import ConfigurationError

#: kombu's defaults for the Redis transport (``sep``, ``priority_steps``, ``unacked_key``).
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)
UNACKED_KEY = "unacked"
SCAN_BATCH = 500
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")

_STAGE_OF_QUEUE = {spec.queue: spec.stage.value for spec in STAGE_QUEUES.values()}


@dataclass(frozen=True)
class QueueDepth:
    queue: str
    #: The stage the queue feeds, or None for the maintenance queue.
    stage: str | None
    waiting: int
    #: None where the broker does not say (RabbitMQ without its management plugin).
    unacked: int | None
    #: Consumers attached to the queue, where the broker says (RabbitMQ), else None.
    consumers: int | None = None


def broker_client(broker_url: str) -> "redis.Redis":
    """A client of a Redis broker (or of the Redis holding metrics and rate limits)."""
    if not broker_url.startswith(REDIS_SCHEMES):
        raise ConfigurationError(
            f"queue counts need a Redis broker; CONVERSA_BROKER_URL is {broker_url.split(':')[0]}")
    return redis.Redis.from_url(broker_url, socket_timeout=10, socket_connect_timeout=5)


def priority_lists(queue: str) -> list[str]:
    return [queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}"
            for step in PRIORITY_STEPS]


def queue_depths(client: "redis.Redis",
                 queues: Iterable[str] = ALL_QUEUES) -> list[QueueDepth]:
    """Waiting and reserved-but-unacknowledged counts of every queue, in the given order."""
    names = list(queues)
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            for key in priority_lists(name):
                pipe.llen(key)
        lengths = pipe.execute()
    unacked = {name: 0 for name in names}
    for queue, _ in _unacked_messages(client):
        if queue in unacked:
            unacked[queue] += 1
    steps = len(PRIORITY_STEPS)
    return [QueueDepth(queue=name, stage=_STAGE_OF_QUEUE.get(name),
                       waiting=sum(lengths[i * steps:(i + 1) * steps]), unacked=unacked[name])
            for i, name in enumerate(names)]


def jobs_in_flight(client: "redis.Redis",
                   queues: Iterable[str] = ALL_QUEUES) -> set[str]:
    """Job ids that some message (waiting or taken and unacknowledged) still carries."""
    found: set[str] = set()
    for _, raw in _unacked_messages(client):
        add_job_id(found, raw)
    for name in queues:
        for key in priority_lists(name):
            start = 0
            while batch := client.lrange(key, start, start + SCAN_BATCH - 1):
                for item in batch:
                    add_job_id(found, _loads(item))
                start += SCAN_BATCH
    return found


def _unacked_messages(client: "redis.Redis") -> Iterator[tuple[str, Any]]:
    cursor = 0
    while True:
        cursor, entries = client.hscan(UNACKED_KEY, cursor, count=SCAN_BATCH)
        assert isinstance(entries, dict)  # a synchronous client answers a dict
        for value in entries.values():
            entry = _loads(value)
            if isinstance(entry, list) and len(entry) == 3:
                message, exchange, routing_key = entry
                yield str(routing_key or exchange), message
        if cursor == 0:
            return


def _loads(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def add_job_id(found: set[str], message: Any) -> None:
    """A stage message's body is Celery protocol 2 JSON: ``[args, kwargs, embed]``."""
    if not isinstance(message, dict):
        return
    body = message.get("body")
    if not isinstance(body, str):
        return
    if message.get("properties", {}).get("body_encoding") == "base64":
        try:
            body = base64.b64decode(body).decode()
        except ValueError:
            return
    decoded = _loads(body.encode())
    if isinstance(decoded, list) and decoded and isinstance(decoded[0], list) and decoded[0]:
        job_id = decoded[0][0]
        if isinstance(job_id, str):
            found.add(job_id)
