"""study.objectives and study.constraints: parsing, validation (exit 2 at load), and what
a study keeps so that a resume with other objectives is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from hposweep.config.loading import load
from hposweep.errors import ConfigError
from hposweep.objectives.spec import constraints_of, objectives_of, parse_constraint, uses_front

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"
TWO = ["study.objectives=[{metric: macro-f1-span, goal: maximize}, "
       "{metric: latency_ms, goal: minimize}]"]
NO_PRUNER = "study.pruner.name=none"


def without_objective(tmp_path: Path) -> Path:
    """The smoke config without its objective_metric/objective_goal lines."""
    text = "".join(line for line in SMOKE.read_text().splitlines(keepends=True)
                   if "objective_" not in line)
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def error_of(path: Path, *overrides: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(path, list(overrides))
    return str(info.value)


def test_parse_constraint_both_ways_and_its_optuna_value() -> None:
    c = parse_constraint(" latency_ms<=20 ")
    assert (c.metric, c.op, c.bound, c.key) == ("latency_ms", "<=", 20.0, "latency_ms <= 20")
    assert c.violation({"latency_ms": 25.0}) == 5.0 and not c.holds({"latency_ms": 25.0})
    assert c.holds({"latency_ms": 20.0})
    floor = parse_constraint("macro-f1 >= 0.5")
    assert floor.violation({"macro-f1": 0.7}) == pytest.approx(-0.2)
    for bad in ("latency_ms < 3", "latency_ms", "<= 3", "x <= fast", "x <= inf"):
        with pytest.raises(ValueError):
            parse_constraint(bad)


def test_objectives_load_and_the_first_is_the_primary(tmp_path: Path) -> None:
    cfg = load(without_objective(tmp_path), [*TWO, NO_PRUNER,
                                             "study.constraints=[n_parameters <= 30]"]).config
    assert [(o.metric, o.goal) for o in objectives_of(cfg)] == [
        ("macro-f1-span", "maximize"), ("latency_ms", "minimize")]
    assert (cfg.study.objective_metric, cfg.study.objective_goal) == ("macro-f1-span", "maximize")
    assert [c.key for c in constraints_of(cfg)] == ["n_parameters <= 30"]
    assert uses_front(cfg)
    assert not uses_front(load(SMOKE).config)


def test_both_spellings_in_the_file_or_on_the_command_line_are_refused(tmp_path: Path) -> None:
    both = tmp_path / "both.yaml"
    both.write_text(SMOKE.read_text().replace(
        "  objective_goal: maximize\n",
        "  objective_goal: maximize\n  objectives: [{metric: loss, goal: minimize}]\n"))
    message = error_of(both)
    assert message.startswith(f"{both}: study.objective_metric") and "not both" in message
    message = error_of(without_objective(tmp_path), *TWO, NO_PRUNER, "study.objective_goal=minimize")
    assert message.startswith("override 'study.objective_goal=minimize': study.objective_goal")
    assert "not both" in message


def test_objectives_typed_on_the_command_line_replace_the_files_objective_metric() -> None:
    cfg = load(SMOKE, [*TWO, NO_PRUNER]).config
    assert [o.metric for o in objectives_of(cfg)] == ["macro-f1-span", "latency_ms"]
    assert cfg.study.objective_metric == "macro-f1-span"  # the first objective
    back = load(SMOKE, ["study.objective_metric=loss", "study.objective_goal=minimize"]).config
    assert [(o.metric, o.maximize) for o in objectives_of(back)] == [("loss", False)]


@pytest.mark.parametrize(("overrides", "expected"), [
    ([*TWO], "study.pruner.name: 'median' cannot prune a study of several objectives"),
    ([*TWO, NO_PRUNER, "study.sampler.name=cmaes"], "cmaes optimizes one objective"),
    ([*TWO, NO_PRUNER, "study.stop_when.no_improvement=5"],
     "study.stop_when.no_improvement: needs one objective"),
    (["study.objectives=[]"], "study.objectives: is empty"),
    (["study.objectives=[{metric: loss, goal: up}]"], "study.objectives[0].goal: must be one of"),
    (["study.objectives=[{metric: bleu}, {metric: loss, goal: minimize}]", NO_PRUNER],
     "study.objectives[0].metric: the built-in trainer does not report 'bleu'"),
    (["study.objectives=[{metric: loss, goal: minimize}, {metric: loss, goal: minimize}]",
      NO_PRUNER], "a metric is listed twice"),
    (["study.objectives=[{metric: latency_ms, goal: minimize}, {metric: loss, goal: minimize}]",
      NO_PRUNER], "reports 'latency_ms' once, after training"),
    (["study.constraints=[latency_ms < 20]"], "study.constraints[0]: 'latency_ms < 20' is not"),
    (["study.constraints=[speed <= 20]"], "study.constraints[0]: the built-in trainer does not"),
    (["mlflow.log_best_checkpoint=front"], "'front' needs several study.objectives"),
    (["mlflow.log_best_checkpoint=always"], "must be true, false or 'front'"),
])
def test_bad_objectives_are_one_line_at_load(tmp_path: Path, overrides: list[str],
                                             expected: str) -> None:
    message = error_of(without_objective(tmp_path), *overrides)
    assert expected in message and "\n" not in message


def test_a_resume_with_other_objectives_or_constraints_is_refused(tmp_path: Path,
                                                                  monkeypatch) -> None:
    from hposweep.errors import UserError
    from hposweep.study.open import open_study

    monkeypatch.chdir(tmp_path)
    path = without_objective(tmp_path)
    open_study(load(path, [*TWO, NO_PRUNER]).config, "s")
    with pytest.raises(UserError, match="study.constraints"):
        open_study(load(path, [*TWO, NO_PRUNER, "study.constraints=[n_parameters <= 3]"]).config,
                   "s")
    with pytest.raises(UserError, match="study.objectives"):
        open_study(load(path, ["study.objectives=[{metric: macro-f1-span}, "
                               "{metric: n_parameters, goal: minimize}]", NO_PRUNER]).config, "s")
    open_study(load(SMOKE).config, "one")  # a study of one objective, resumed with two
    with pytest.raises(UserError, match="study.objectives"):
        open_study(load(path, [*TWO, NO_PRUNER]).config, "one")
