"""What a RabbitMQ broker holds, per queue, in RabbitMQ's own counts.

A passive ``queue.declare`` answers with the queue's ready messages and its consumers, without
the management plugin and without creating anything. RabbitMQ does not tell a client how many
messages are delivered but unacknowledged, so that count is ``None``. The job ids in flight
are read by taking the ready messages without acknowledging them and closing the channel,
which puts every one back in its queue.
Reference: https://www.rabbitmq.com/docs/queues#passive-declaration
"""

from collections.abc import Iterable
from typing import Any

import kombu

from adapters.celery.topology import ALL_QUEUES, STAGE_QUEUES
from adapters.redis.queues import QueueDepth, add_job_id

AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")
#: Ready messages read per queue when looking for the jobs in flight; past it, a stuck job
#: may get a duplicate message, which the idempotent stages ignore.
BROWSE_LIMIT = 10_000

_STAGE_OF_QUEUE = {spec.queue: spec.stage.value for spec in STAGE_QUEUES.values()}


def is_amqp(broker_url: str) -> bool:
    return broker_url.startswith(AMQP_SCHEMES)


def _connection(broker_url: str) -> Any:
    connection: Any = kombu.Connection(
        broker_url, connect_timeout=5)
    connection.ensure_connection(max_retries=1, timeout=5)
    return connection


def queue_depths(broker_url: str, queues: Iterable[str] = ALL_QUEUES) -> list[QueueDepth]:
    """Ready messages and consumers per queue (a queue not declared yet counts as empty)."""
    depths = []
    with _connection(broker_url) as connection:
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


def jobs_in_flight(broker_url: str, queues: Iterable[str] = ALL_QUEUES) -> set[str]:
    """Job ids of the ready messages, read without acknowledging them; closing the channel
    returns every one to its queue. Messages a worker holds are its running tasks."""
    found: set[str] = set()
    with _connection(broker_url) as connection:
        for name in queues:
            channel = connection.channel()
            try:
                for _ in range(BROWSE_LIMIT):
                    message = channel.basic_get(queue=name, no_ack=False)
                    if message is None:
                        break
                    add_job_id(found, {"body": _text(message.body)})
            except connection.channel_errors:
                pass  # the queue does not exist: nothing in it
            finally:
                _close_quietly(channel, connection)
    return found


def _text(body: Any) -> str:
    return body.decode() if isinstance(body, bytes | bytearray) else str(body)


def _close_quietly(channel: Any, connection: Any) -> None:
    try:
        channel.close()
    except (*connection.channel_errors, *connection.connection_errors):
        pass
