"""The sampler's seeds: one stream of draws per study, the same in every process and on
every resume, and never another study's."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from hposweep.results import WARM_START_ATTR

WARM_START_KEY_PREFIX = "warm_start:"  # the key of a warm-started trial: this prefix + its `from`


def study_stream(study_name: str, trials: Sequence[Any]) -> str:
    """What sets a study's draws apart: its name (the same config replays the same sweep,
    in a new output dir too) and the studies it was warm-started from. A study warm-started
    from a namesake (a ``--fresh`` rerun warm-started from its archived self, the same config
    in another output dir) would otherwise draw its source's trials again. Both are read
    from the study, so every worker and every resume agree."""
    sources = {t.user_attrs[WARM_START_ATTR].get("key", "") for t in trials
               if WARM_START_ATTR in t.user_attrs}
    return "\n".join([study_name, *sorted(s for s in sources if s.startswith(WARM_START_KEY_PREFIX))])


def stream_seed(seed: int | None, stream: str, position: int | str) -> int | None:
    """The 32-bit seed at ``position`` (a trial number) of the study ``stream``, from
    ``study.sampler.seed``; None (unseeded) when that is None."""
    if seed is None:
        return None
    digest = hashlib.sha256(f"{seed}\n{position}\n{stream}".encode()).digest()
    return int.from_bytes(digest[:4], "big")
