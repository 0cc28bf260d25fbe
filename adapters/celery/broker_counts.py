"""What the Celery broker holds, whichever it is: Redis (kombu's lists, read directly) or
RabbitMQ (its passive declare). One entry point for the CLI, the probe, the exporter and the
reconciler."""

from collections.abc import Callable, Iterable
from typing import TypeVar

import redis

from adapters.celery.topology import ALL_QUEUES
from adapters.rabbitmq import queues as rabbitmq
from adapters.redis import queues as redis_queues
from adapters.redis.queues import QueueDepth

T = TypeVar("T")


def queue_depths(broker_url: str, queues: Iterable[str] = ALL_QUEUES) -> list[QueueDepth]:
    """Per queue: messages waiting, unacknowledged (None on RabbitMQ), consumers (RabbitMQ)."""
    return _ask(broker_url, queues, rabbitmq.queue_depths, redis_queues.queue_depths)


def jobs_in_flight(broker_url: str, queues: Iterable[str] = ALL_QUEUES) -> set[str]:
    """Job ids some message on the broker still carries."""
    return _ask(broker_url, queues, rabbitmq.jobs_in_flight, redis_queues.jobs_in_flight)


def _ask(broker_url: str, queues: Iterable[str],
         on_rabbitmq: Callable[[str, Iterable[str]], T],
         on_redis: Callable[[redis.Redis, Iterable[str]], T]) -> T:
    """``on_rabbitmq`` with the URL, or ``on_redis`` with a client closed afterwards."""
    if rabbitmq.is_amqp(broker_url):
        return on_rabbitmq(broker_url, queues)
    client = redis_queues.broker_client(broker_url)
    try:
        return on_redis(client, queues)
    finally:
        client.close()


class BrokerInFlight:
    """The InFlightJobs port on the Celery broker; ``broker_url`` is asked for at each read."""

    def __init__(self, broker_url: Callable[[], str]) -> None:
        self._broker_url = broker_url

    def jobs_in_flight(self) -> set[str]:
        return jobs_in_flight(self._broker_url())
