"""``python -m demix`` is the ``demix`` command."""

from demix.cli import main

if __name__ == "__main__":  # spawned worker processes re-import this module; they must not rerun the CLI
    main()
