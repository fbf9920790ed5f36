"""``python -m broker`` runs the command line."""

from broker.cli import main

main()
