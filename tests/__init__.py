"""The test suites of ConverSA Ingest."""
