"""What the broker holds, per queue: messages waiting, and messages a worker has taken but not
yet acknowledged (running, or held for a retry countdown).

On RabbitMQ (``amqp://``) the counts are RabbitMQ's own: a passive ``queue.declare`` answers
with the queue's ready messages and its consumers, without the management plugin and without
creating anything; RabbitMQ does not tell a client how many messages are unacknowledged, so
that count is ``None``. The job ids in flight are read by taking the ready messages without
acknowledging them and closing the channel, which puts them back where they were.

On Redis it reads kombu's Redis layout directly (one round trip per queue, no consumer):
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
from kombu import Connection

from domain.errors import ConfigurationError
from workers.topology import ALL_QUEUES, STAGE_QUEUES

#: kombu's defaults for the Redis transport (``sep``, ``priority_steps``, ``unacked_key``).
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)
UNACKED_KEY = "unacked"
SCAN_BATCH = 500
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")
#: Ready messages read per queue when looking for the jobs in flight on RabbitMQ; past it,
#: a stuck job may get a duplicate message, which the idempotent stages ignore.
AMQP_BROWSE_LIMIT = 10_000

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


def is_redis(broker_url: str) -> bool:
    return broker_url.startswith(REDIS_SCHEMES)


def is_amqp(broker_url: str) -> bool:
    return broker_url.startswith(AMQP_SCHEMES)


def broker_queue_depths(broker_url: str,
                        queues: Iterable[str] = ALL_QUEUES) -> list[QueueDepth]:
    """Per queue counts from whichever broker the URL names (Redis or RabbitMQ)."""
    if is_amqp(broker_url):
        return amqp_queue_depths(broker_url, queues)
    client = broker_client(broker_url)
    try:
        return queue_depths(client, queues)
    finally:
        client.close()


def broker_jobs_in_flight(broker_url: str, queues: Iterable[str] = ALL_QUEUES) -> set[str]:
    """Job ids some message on the broker still carries (Redis or RabbitMQ)."""
    if is_amqp(broker_url):
        return amqp_jobs_in_flight(broker_url, queues)
    client = broker_client(broker_url)
    try:
        return jobs_in_flight(client, queues)
    finally:
        client.close()


def _amqp_connection(broker_url: str) -> Connection:
    connection = Connection(broker_url, connect_timeout=5)
    connection.ensure_connection(max_retries=1, timeout=5)
    return connection


def amqp_queue_depths(broker_url: str,
                      queues: Iterable[str] = ALL_QUEUES) -> list[QueueDepth]:
    """RabbitMQ's own ready-message and consumer counts (passive declare; a queue that does
    not exist yet counts as empty)."""
    depths = []
    with _amqp_connection(broker_url) as connection:
        for name in queues:
            channel = connection.channel()
            try:
                declared = channel.queue_declare(queue=name, passive=True)
                waiting, consumers = int(declared.message_count), int(declared.consumer_count)
            except connection.channel_errors:  # 404 NOT_FOUND: never declared
                waiting, consumers = 0, 0
            finally:
                _close_quietly(channel, connection)
            depths.append(QueueDepth(queue=name, stage=_STAGE_OF_QUEUE.get(name),
                                     waiting=waiting, unacked=None, consumers=consumers))
    return depths


def amqp_jobs_in_flight(broker_url: str, queues: Iterable[str] = ALL_QUEUES) -> set[str]:
    """Job ids of the ready messages, read without acknowledging them; closing the channel
    returns every one of them to its queue. Messages a worker holds are its running tasks."""
    found: set[str] = set()
    with _amqp_connection(broker_url) as connection:
        for name in queues:
            channel = connection.channel()
            try:
                for _ in range(AMQP_BROWSE_LIMIT):
                    message = channel.basic_get(queue=name, no_ack=False)
                    if message is None:
                        break
                    _add_job_id(found, {"body": _text(message.body)})
            except connection.channel_errors:
                pass  # the queue does not exist: nothing in it
            finally:
                _close_quietly(channel, connection)
    return found


def _text(body: Any) -> str:
    return body.decode() if isinstance(body, bytes | bytearray) else str(body)


def _close_quietly(channel: Any, connection: Connection) -> None:
    try:
        channel.close()
    except (*connection.channel_errors, *connection.connection_errors):
        pass


def broker_client(broker_url: str) -> "redis.Redis[bytes]":
    """A client of a Redis broker (or of the Redis holding metrics and rate limits)."""
    if not is_redis(broker_url):
        raise ConfigurationError(
            f"queue counts need a Redis broker; CONVERSA_BROKER_URL is {broker_url.split(':')[0]}")
    return redis.Redis.from_url(broker_url, socket_timeout=10, socket_connect_timeout=5)


def priority_lists(queue: str) -> list[str]:
    return [queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}"
            for step in PRIORITY_STEPS]


def queue_depths(client: "redis.Redis[bytes]",
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


def jobs_in_flight(client: "redis.Redis[bytes]",
                   queues: Iterable[str] = ALL_QUEUES) -> set[str]:
    """Job ids that some message (waiting or taken and unacknowledged) still carries."""
    found: set[str] = set()
    for _, raw in _unacked_messages(client):
        _add_job_id(found, raw)
    for name in queues:
        for key in priority_lists(name):
            start = 0
            while batch := client.lrange(key, start, start + SCAN_BATCH - 1):
                for item in batch:
                    _add_job_id(found, _loads(item))
                start += SCAN_BATCH
    return found


def _unacked_messages(client: "redis.Redis[bytes]") -> Iterator[tuple[str, Any]]:
    cursor = 0
    while True:
        cursor, entries = client.hscan(UNACKED_KEY, cursor, count=SCAN_BATCH)
        for value in entries.values():
            entry = _loads(value)
            if isinstance(entry, list) and len(entry) == 3:
                message, exchange, routing_key = entry
                yield str(routing_key or exchange), message
        if cursor == 0:
            return


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _add_job_id(found: set[str], message: Any) -> None:
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
