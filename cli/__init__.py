"""The conversa command line: the CLI and the operator commands (doctor, metrics, probe)."""
