"""Loading a config: YAML and ``key=value`` overrides merged by OmegaConf (``${oc.env:...}``
resolved), checked by the schema and the rules, every problem worded as one line that
names where it came from (the file, or the override that set the key) and the key."""

from __future__ import annotations

import difflib
import io
import re
from pathlib import Path
from typing import Any, NoReturn, get_args

from pydantic import BaseModel, ValidationError

from hposweep.config import rules
from hposweep.config.schema import (
    PARAM_TYPES,
    URL_KEYS,
    LoadedConfig,
    ParamSpec,
    SweepConfig,
    quoted,
)
from hposweep.errors import ConfigError, first_line

# Input is refused before YAML parsing beyond these: PyYAML's time grows with a scalar's
# length (10 MB: minutes) and its stack with nesting.
MAX_CONFIG_BYTES = 1 << 20
MAX_OVERRIDE_CHARS = 64 << 10
MAX_FLOW_DEPTH = 64
MAX_MESSAGE_CHARS = 300  # of a library's error message (it may quote a whole value)
# A bracket, or what to skip: a quoted string (unclosed: to the end of its line, so that no
# match ever backtracks and the scan stays linear) or a comment.
FLOW_TOKEN = re.compile(r"""[\[\]{}]|"(?:[^"\\\n]|\\.)*"?|'(?:[^'\n]|'')*'?|(?<!\S)#[^\n]*""")
# Keys that moved: a config using the old name is refused with the new one.
RENAMED_KEYS = {
    "checkpoint.study_name": "study.name",
    "checkpoint.storage_path": "study.storage",
}
# Keys that moved and still work under their old name, with a warning.
DEPRECATED_KEYS = {
    "checkpoint.enabled": "study.persist",
    "checkpoint.auto_resume": "study.resume",
}


def load(path: str | Path, overrides: list[str] | tuple[str, ...] = (),
         check_files: bool = True) -> LoadedConfig:
    """Read ``path``, apply ``key=value`` overrides, and return a validated config.

    ``check_files=False`` skips checking that the data files exist: the commands that only
    read a study (status, best, compare, export, plot) do not need them.
    Raises :class:`ConfigError` with one line naming the file or override, the key and the
    problem.
    """
    from omegaconf import OmegaConf

    path = Path(path)
    raw = _read_yaml(path)
    trees = [_parse_override(override, overrides[i + 1:]) for i, override in enumerate(overrides)]
    sources = [str(path), *(f"override {override!r}" for override in overrides)]
    deprecations = []
    for source, tree in zip(sources, [raw, *trees], strict=True):
        _reject_renamed_keys(source, OmegaConf.to_container(tree, resolve=False))
        deprecations += _move_deprecated_keys(source, tree)
    _settle_objective_spelling(path, raw, list(overrides), trees)

    # The defaults first: an interpolation may name a key the file leaves at its default.
    try:
        merged = OmegaConf.merge(OmegaConf.create(SweepConfig().model_dump(by_alias=True)),
                                 raw, *trees)
        data = OmegaConf.to_container(merged, resolve=True)
    except Exception as exc:  # an interpolation that does not resolve
        raise ConfigError(f"{path}: {_describe_omegaconf_error(exc)}") from None
    blame = _Blame(path, overrides)
    try:
        cfg = SweepConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(blame.schema_problem(exc.errors()[0])) from None
    try:
        rules.check(cfg, check_files)
    except rules.Broken as broken:
        raise ConfigError(blame.value_problem(broken.key, broken.problem, broken.involves)) from None
    unresolved_yaml = _as_written(cfg, OmegaConf.to_container(merged, resolve=False))
    if cfg.study.objectives:  # the first objective is the primary one (progress, reports)
        cfg.study.objective_metric = cfg.study.objectives[0].metric
        cfg.study.objective_goal = cfg.study.objectives[0].goal
    return LoadedConfig(cfg, unresolved_yaml, path, tuple(deprecations), tuple(overrides))


class _FlowMapping(dict):  # type: ignore[type-arg]
    """A mapping dumped on one line, as a search-space entry is written."""


def _as_written(cfg: SweepConfig, unresolved: Any) -> str:
    """The config as YAML with every default, interpolations unresolved (no secret
    resolved from the environment), each search-space entry on one line with only the keys
    that apply to it (no ``low: null`` under a categorical)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(_FlowMapping, lambda dumper, data: dumper.represent_mapping(
        "tag:yaml.org,2002:map", data, flow_style=True))
    tree = cfg.model_dump(by_alias=True)
    tree["search_space"] = {
        name: {"type": spec.type, **spec.model_dump(exclude_defaults=True, exclude={"type"})}
        for name, spec in cfg.search_space.items()}
    _keep_interpolations(tree, unresolved)
    tree["search_space"] = {name: _FlowMapping(spec) for name, spec in tree["search_space"].items()}
    return yaml.dump(tree, Dumper=Dumper, default_flow_style=False, sort_keys=False,
                     allow_unicode=True, width=10_000)


def _keep_interpolations(tree: Any, unresolved: Any) -> None:
    """Put each ``${...}`` of ``unresolved`` back in place of its resolved value."""
    pairs = (unresolved.items() if isinstance(unresolved, dict) else
             enumerate(unresolved) if isinstance(unresolved, list) else ())
    for key, value in pairs:
        if isinstance(value, str) and "${" in value:
            tree[key] = value
        elif isinstance(tree, (dict, list)) and (key in tree if isinstance(tree, dict)
                                                  else key < len(tree)):
            _keep_interpolations(tree[key], value)


# What a wrong kind of value the schema reports, by pydantic's error type.
WRONG_KINDS: dict[str, Any] = {
    "int_parsing": int, "int_type": int, "int_from_float": int,
    "float_parsing": float, "float_type": float,
    "bool_parsing": bool, "bool_type": bool,
    "list_type": list, "dict_type": dict, "string_type": str,
    "model_type": BaseModel, "model_attributes_type": BaseModel,
}
# Keys whose wrong value is "unknown <noun>" (else "must be one of ...").
NOUNS = {"study.sampler.name": "sampler", "study.pruner.name": "pruner", "data.task": "task"}


class _Blame:
    """Words a problem with a key as coming from the override that set it, else the file."""

    def __init__(self, path: Path, overrides: list[str] | tuple[str, ...]) -> None:
        self.path = path
        self.overrides = _override_keys(overrides)

    def setter(self, key: str, involves: tuple[str, ...] = ()) -> tuple[str, str] | None:
        """``(key, override)`` of the last override that set ``key`` or one of ``involves``."""
        def touches(set_key: str, some_key: str) -> bool:
            return (set_key == some_key or some_key.startswith((f"{set_key}.", f"{set_key}["))
                    or set_key.startswith((f"{some_key}.", f"{some_key}[")))

        setters = [(set_key, text) for set_key, text in self.overrides
                   if any(touches(set_key, k) for k in (key, *involves))]
        return setters[-1] if setters else None

    def value_problem(self, key: str, problem: str, involves: tuple[str, ...] = ()) -> str:
        """``where: key: problem`` for a value the schema or a rule refuses."""
        setter = self.setter(key, involves)
        where = str(self.path) if setter is None else (
            f"override {setter[1]!r}" if key not in URL_KEYS else f"override of {key}")
        return f"{where}: {key}: {problem}"

    def schema_problem(self, error: Any) -> str:
        """One line for the first error pydantic reports."""
        parts = _parts(error["loc"])
        key = _key(parts)
        kind, ctx = error["type"], error.get("ctx") or {}
        if kind == "rule":
            below = ctx["key"]
            full = (key + below if below.startswith("[") else
                    ".".join(p for p in (key, below) if p))
            return self.value_problem(full, ctx["problem"], tuple(ctx["involves"]))
        if kind == "union_tag_invalid":  # a search-space entry's type
            return self.value_problem(f"{key}.type", f"unknown distribution {ctx['tag']!r}; "
                                      f"one of {', '.join(PARAM_TYPES)}")
        setter = self.setter(key)
        if kind == "extra_forbidden":
            return self._shape(setter, f"{key}: unknown key{_did_you_mean(parts)}")
        if kind in WRONG_KINDS:
            return self._shape(setter, _wrong_kind(parts, WRONG_KINDS[kind], error["input"],
                                                   setter))
        return self.value_problem(key, _out_of_range(parts, error))

    def _shape(self, setter: tuple[str, str] | None, problem: str) -> str:
        return f"{self.path}: {problem}" if setter is None else f"bad override {quoted(setter[1])}: {problem}"


def _parts(loc: tuple[Any, ...]) -> list[Any]:
    """The key path of an error's location, without the tag pydantic adds below a
    search-space entry (``search_space.dropout.float.high``)."""
    parts = list(loc)
    if parts[:1] == ["search_space"] and len(parts) > 2 and parts[2] in PARAM_TYPES:
        del parts[2]
    return parts


def _key(parts: list[Any]) -> str:
    key = ""
    for part in parts:
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else str(part)
    return key


def _model_at(parts: list[Any]) -> type[BaseModel] | None:
    """The schema model a key path points to, if it is a section."""
    node: type[BaseModel] | None = SweepConfig
    names = [p for p in parts if not isinstance(p, int)]
    i = 0
    while i < len(names):
        if node is None:
            return None
        if node is SweepConfig and names[i] == "search_space":
            node, i = (ParamSpec, i + 2) if len(names) > i + 1 else (None, i + 1)
            continue
        field = _field(node, names[i])
        node = _model_in(field.annotation) if field is not None else None
        i += 1
    return node


def _field(model: type[BaseModel], name: str) -> Any:
    return next((f for n, f in model.model_fields.items() if name in (n, f.alias)), None)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for m in map(_model_in, get_args(annotation)) if m is not None), None)


def _leaf_field(parts: list[Any]) -> Any:
    parent = _model_at(parts[:-1])
    return _field(parent, parts[-1]) if parent is not None and parts else None


def _did_you_mean(parts: list[Any]) -> str:
    parent = _model_at(parts[:-1])
    known = [f.alias or n for n, f in parent.model_fields.items()] if parent else []
    close = difflib.get_close_matches(str(parts[-1]), known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _wrong_kind(parts: list[Any], kind: Any, value: Any, setter: tuple[str, str] | None) -> str:
    """``key must be <kind>, e.g. '<example>', got <value>``: an example written as the
    override or the YAML it came from."""
    key = _key(parts)
    if setter is not None and setter[0] == key:
        value = setter[1].split("=", 1)[1].strip()  # as typed
    got = quoted(value) if isinstance(value, str) else repr(value)
    text = value if isinstance(value, str) else repr(value)
    leaf = str(parts[-1])
    if kind is BaseModel:
        model = _model_at(parts)
        first = next(iter(model.model_fields)) if model else "name"
        example = f"{key}.{first}=..." if setter else f"{leaf}: {{{first}: ...}}"
        return f"{key} is a section: set its keys one by one, e.g. {example!r}, got {got}"
    what, example = EXPECTED_VALUES[kind]
    written_as = f"{key}=" if setter else f"{leaf}: "
    inner = text.strip("[]{}") or "value"
    return f"{key} must be {what} {written_as + example.format(value=inner)!r}, got {got}"


def _out_of_range(parts: list[Any], error: Any) -> str:
    """``must be <what the field allows>, got <value>``."""
    field = _leaf_field(parts)
    value, ctx, kind = error["input"], error.get("ctx") or {}, error["type"]
    got = f", got {value!r}"
    if field is not None and field.description:
        return f"must be {field.description}{got}"
    if kind == "literal_error":
        allowed = ", ".join(re.findall(r"'([^']*)'", ctx.get("expected", "")))
        noun = NOUNS.get(_key(parts))
        return (f"unknown {noun} {value!r}; one of {allowed}" if noun
                else f"must be one of {allowed}{got}")
    nullable = field is not None and type(None) in get_args(field.annotation)
    bound = {"greater_than_equal": ("ge", "at least {}"), "greater_than": ("gt", "greater than {}"),
             "less_than_equal": ("le", "at most {}"), "less_than": ("lt", "less than {}")}.get(kind)
    if bound is None:
        return f"{_library_problem(ValueError(error['msg']))}{got}"
    limit = ctx[bound[0]]
    what = ("0 or more" if kind == "greater_than_equal" and limit == 0 else
            "positive" if kind == "greater_than" and limit == 0 else bound[1].format(limit))
    return f"must be {what}{' or null' if nullable else ''}{got}"



def _read_yaml(path: Path) -> Any:
    from omegaconf import DictConfig, OmegaConf

    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    with path.open("rb") as file:
        data = file.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {path.stat().st_size:,} bytes; a config file may have at "
                          f"most {MAX_CONFIG_BYTES:,} (1 MiB)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    too_deep = _too_deep_at(text)
    if too_deep is not None:
        raise ConfigError(f"{path}: line {too_deep}: [ and {{ nest deeper than {MAX_FLOW_DEPTH} levels")
    try:
        raw = OmegaConf.load(io.StringIO(text))
    except Exception as exc:  # yaml errors, constructor errors for !!python tags, ...
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
    if not isinstance(raw, DictConfig):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
    return raw


def _parse_override(override: str, following: list[str] | tuple[str, ...] = ()) -> Any:
    """One ``key=value`` override as a config tree; a bad one is named on its own.
    ``following``: the arguments after it, which the shell may have split off it."""
    from omegaconf import OmegaConf

    def fail(problem: str) -> NoReturn:
        raise ConfigError(f"bad override {quoted(override)}: {problem}")

    if len(override) > MAX_OVERRIDE_CHARS:
        fail(f"an override may have at most {MAX_OVERRIDE_CHARS:,} characters")
    if _too_deep_at(override) is not None:
        fail(f"[ and {{ nest deeper than {MAX_FLOW_DEPTH} levels")
    if "=" not in override:
        fail("expected key=value, e.g. study.max_trials=10")
    value = override.split("=", 1)[1]
    if _open_brackets(value) > 0:
        fail(_unclosed_problem(override, following))
    try:
        return OmegaConf.from_dotlist([override])
    except Exception as exc:
        fail(f"its value {quoted(value)} is not valid YAML ({_library_problem(exc)}); "
             "write a list as key=[a,b], a mapping as key={a: 1}, and quote a string "
             "with brackets: key='\"[a]\"'")


def _open_brackets(text: str) -> int:
    """How many ``[``/``{`` of ``text`` are not closed (quoted ones do not count)."""
    depth = 0
    for token in FLOW_TOKEN.finditer(text):
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(token.group(), 0)
    return depth


def _unclosed_problem(override: str, following: list[str] | tuple[str, ...]) -> str:
    """An override whose brackets close in a later argument was split by the shell at a
    space: the advice is to quote it whole, shown rejoined."""
    joined = override
    for part in following:
        joined = f"{joined} {part}"
        if _open_brackets(joined) <= 0:
            return ("the shell split an unquoted override at a space: quote the whole "
                    f"override, e.g. {joined!r}")
    key = override.split("=", 1)[0].strip()
    return ("a [ or { is not closed; if the shell split the override at a space, quote the "
            f"whole override, e.g. '{key}=[a, b]'")


def _override_keys(overrides: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    """``(key, override)`` for each ``key=value`` override, in order."""
    return [(override.split("=", 1)[0].strip(), override) for override in overrides]


# What a value of each schema type must look like, and a value of that kind.
EXPECTED_VALUES = {
    list: ("a list:", "[{value}]"),  # the user's own value, in brackets
    dict: ("a mapping, e.g.", "{{name: value}}"),
    int: ("a whole number, e.g.", "10"),
    float: ("a number, e.g.", "0.5"),
    bool: ("true or false, e.g.", "true"),
    str: ("a single value, e.g.", "text"),
}


def _too_deep_at(text: str) -> int | None:
    """The line where ``[``/``{`` collections nest deeper than MAX_FLOW_DEPTH, else None.

    A cheap scan before parsing: quoted strings and comments are skipped, well enough for
    a limit no real config comes near.
    """
    depth = 0
    for token in FLOW_TOKEN.finditer(text):
        if token.group() in ("[", "{"):
            depth += 1
        elif token.group() in ("]", "}"):
            depth = max(depth - 1, 0)
        if depth > MAX_FLOW_DEPTH:
            return text.count("\n", 0, token.start()) + 1
    return None


def _library_problem(exc: BaseException) -> str:
    """A library's error message in one line, cut short: it may quote a whole value."""
    message = first_line(exc)
    return message if len(message) <= MAX_MESSAGE_CHARS else message[:MAX_MESSAGE_CHARS] + "…"


def _yaml_problem(exc: Exception) -> str:
    """``line L, column C: problem`` for PyYAML's marked errors; else the first line."""
    if isinstance(exc, RecursionError):
        return "nested too deeply to read"
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is None or problem is None:
        return _library_problem(exc)
    text = f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and context_mark is not None:
        text += f" ({context} started at line {context_mark.line + 1})"
    return text


def _reject_renamed_keys(source: str, tree: Any) -> None:
    for old, new in RENAMED_KEYS.items():
        section, key = old.split(".")
        if isinstance(tree, dict) and isinstance(tree.get(section), dict) and key in tree[section]:
            raise ConfigError(f"{source}: {old}: this key is now {new!r}; move the value there")


def _move_deprecated_keys(source: str, tree: Any) -> list[str]:
    """Move each deprecated key of ``tree`` to its new place; a warning line for each."""
    from omegaconf import DictConfig, OmegaConf

    moved = []
    for old, new in DEPRECATED_KEYS.items():
        section, key = old.split(".")
        node = tree.get(section)
        if not isinstance(node, DictConfig) or key not in node:
            continue
        if OmegaConf.select(tree, new, default=None) is not None:
            raise ConfigError(f"{source}: {old}: set {new} only ({old} is its deprecated spelling)")
        value = OmegaConf.to_container(node, resolve=False)[key]
        del node[key]
        OmegaConf.update(tree, new, value, force_add=True)
        moved.append(f"{source}: {old} is deprecated: write {new}")
    return moved


SINGLE_OBJECTIVE_KEYS = ("objective_metric", "objective_goal")


def _settle_objective_spelling(path: Path, raw: Any, overrides: list[str], trees: list[Any]) -> None:
    """``study.objectives`` or ``study.objective_metric/objective_goal``: the file may not set
    both, nor may the command line; a spelling set on the command line replaces the file's
    other one (``study.objectives=[...]`` over a file's objective_metric)."""
    def spellings(tree: Any) -> tuple[list[str], bool]:
        study = tree.get("study") if isinstance(tree, DictConfig) else None
        if not isinstance(study, DictConfig):
            return [], False
        return ([k for k in SINGLE_OBJECTIVE_KEYS if k in study],
                study.get("objectives") is not None)

    from omegaconf import DictConfig

    def refuse(source: str, key: str) -> NoReturn:
        raise ConfigError(f"{source}: study.{key}: set either study.objectives or "
                          "study.objective_metric/objective_goal, not both")

    single, several = spellings(raw)
    if single and several:
        refuse(str(path), single[0])
    by_override = [(o, *spellings(t)) for o, t in zip(overrides, trees, strict=True)]
    typed_single = [(o, keys[0]) for o, keys, _ in by_override if keys]
    typed_several = [o for o, _, many in by_override if many]
    if typed_single and typed_several:
        refuse(f"override {typed_single[0][0]!r}", typed_single[0][1])
    study = raw.get("study") if isinstance(raw, DictConfig) else None
    if isinstance(study, DictConfig):
        for key in (SINGLE_OBJECTIVE_KEYS if typed_several else
                    ("objectives",) if typed_single else ()):
            study.pop(key, None)


def _describe_omegaconf_error(exc: Exception) -> str:
    """One line for an OmegaConf merge or interpolation error."""
    key = getattr(exc, "full_key", None) or ""
    message = _library_problem(exc)
    if type(exc).__name__ == "InterpolationResolutionError" or "oc.env" in message:
        return f"{key}: cannot resolve: {message}" if key else message
    return f"{key}: {message}" if key else message
