"""``python -m hposweep``: the same as the ``hposweep`` command."""

from hposweep.cli import main

main()
