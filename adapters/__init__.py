"""Ports (the contracts the pipeline needs) and the adapters that implement them."""
