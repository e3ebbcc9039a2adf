"""``python -m demix`` is the ``demix`` command."""

from demix.cli import main

main()
