"""What the Celery broker holds, whichever it is: Redis (kombu's lists, read directly) or
RabbitMQ (its passive declare). One entry point for the CLI, the probe, the exporter and the
reconciler."""

from collections.abc import Callable, Iterable

from adapters.celery.topology import ALL_QUEUES
from adapters.rabbitmq import queues as rabbitmq
from adapters.redis import queues as redis_queues
from adapters.redis.queues import QueueDepth


def queue_depths(broker_url: str, queues: Iterable[str] = ALL_QUEUES) -> list[QueueDepth]:
    """Per queue: messages waiting, unacknowledged (None on RabbitMQ), consumers (RabbitMQ)."""
    if rabbitmq.is_amqp(broker_url):
        return rabbitmq.queue_depths(broker_url, queues)
    client = redis_queues.broker_client(broker_url)
    try:
        return redis_queues.queue_depths(client, queues)
    finally:
        client.close()


def jobs_in_flight(broker_url: str, queues: Iterable[str] = ALL_QUEUES) -> set[str]:
    """Job ids some message on the broker still carries."""
    if rabbitmq.is_amqp(broker_url):
        return rabbitmq.jobs_in_flight(broker_url, queues)
    client = redis_queues.broker_client(broker_url)
    try:
        return redis_queues.jobs_in_flight(client, queues)
    finally:
        client.close()


class BrokerInFlight:
    """The InFlightJobs port on the Celery broker; ``broker_url`` is asked for at each read."""

    def __init__(self, broker_url: Callable[[], str]) -> None:
        self._broker_url = broker_url

    def jobs_in_flight(self) -> set[str]:
        return jobs_in_flight(self._broker_url())
