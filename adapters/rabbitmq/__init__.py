"""RabbitMQ as the Celery broker: what its queues hold, read with RabbitMQ's own answers."""
