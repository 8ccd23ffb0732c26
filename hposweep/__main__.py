"""``python -m hposweep``: the same as the ``hposweep`` command."""

from hposweep.cli.app import main

main()
