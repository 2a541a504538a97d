"""`python -m modomo_cli`."""

from modomo_cli.app import main

main()
