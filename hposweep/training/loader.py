"""Finding the trainer a config names: ``builtin`` or ``package.module:function``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hposweep.api import TrainFn


def load_trainer(spec: str) -> TrainFn:
    """``builtin`` or ``package.module:function`` (importable from the working directory)."""
    import importlib
    import sys

    from hposweep.errors import ConfigError

    if spec == "builtin":
        from hposweep.training.builtin import train

        return train
    module_name, _, function_name = spec.partition(":")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(f"train.trainer: cannot import {module_name!r}: {exc}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigError(f"train.trainer: {module_name!r} has no function {function_name!r}")
    _check_signature(spec, function)
    return function  # type: ignore[no-any-return]


def _check_signature(spec: str, function: Callable[..., Any]) -> None:
    """Catch what can be caught before any trial: the arguments and a declared return."""
    import inspect
    import typing

    from hposweep.errors import ConfigError

    try:
        signature = inspect.signature(function)
        signature.bind(None, None, None)
    except TypeError:
        raise ConfigError(f"train.trainer: {spec} must accept (params, data, ctx)") from None
    except ValueError:
        return  # no signature to read (a builtin): trust it
    hints = typing.get_type_hints(function) if function.__annotations__ else {}
    declared = hints.get("return")
    if declared is not None:
        origin = typing.get_origin(declared) or declared
        if not (isinstance(origin, type) and issubclass(origin, Mapping)):
            raise ConfigError(f"train.trainer: {spec} is declared to return {declared!r}; it must "
                              "return a dict of metrics")
