"""`python -m cli ...` runs the conversa CLI."""

from cli.main import main

main()
