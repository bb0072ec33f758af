"""``python -m fedsearch`` runs the command line."""

from fedsearch.cli import main

main()
