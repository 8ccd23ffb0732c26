"""Named points where a test can kill this process for real (SIGKILL, no cleanup).

``HPOSWEEP_KILL_AT=<point>`` in the environment arms one point. Production runs never
set it; the crash-safety tests do, to prove that a kill at that instant loses nothing.
"""

from __future__ import annotations

import os
import signal

ENV_VAR = "HPOSWEEP_KILL_AT"


def kill_point(name: str) -> None:
    if os.environ.get(ENV_VAR) == name:
        os.kill(os.getpid(), signal.SIGKILL)
