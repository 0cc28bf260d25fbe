"""In-memory fakes of every port, for tests and for wiring without servers."""
