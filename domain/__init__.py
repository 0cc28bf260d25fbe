"""Domain model of ConverSA Ingest: jobs, documents, chunks, events and errors; no I/O."""
