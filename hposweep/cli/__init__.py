"""The ``hposweep`` command line (:mod:`.app`): parse, call, print, exit codes; heavy libraries
are imported inside the commands. May import config, study, sweep, workers, reports,
console, interrupts and errors."""

from hposweep.cli.app import app, main

__all__ = ["app", "main"]
