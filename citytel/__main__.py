"""``python -m citytel``: the same as the ``citytel`` command."""

from citytel.cli import main

main()
