"""The StageDispatcher on Celery: queue and task names, and the dispatcher that sends chains."""
