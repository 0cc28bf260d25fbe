"""Use cases: one function per stage, the producer API, search, delete, retry and reconcile."""
