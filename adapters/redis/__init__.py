"""Redis, beside the broker's role: the queue inspector and the shared rate limiter."""
