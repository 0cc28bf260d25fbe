"""`python -m workers ...` runs the conversa CLI."""

from workers.cli import main

main()
