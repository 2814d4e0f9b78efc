"""``python -m postroom`` runs the command-line interface."""

from postroom.cli.main import main

main()
