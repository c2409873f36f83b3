"""`python -m journey_mining ...` is the `journey` command."""

from journey_mining.cli import main

main()
