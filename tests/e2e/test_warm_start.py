"""``study.enqueue`` and ``study.warm_start`` end to end: the parameter sets run first,
exactly once across a resume (a real SIGKILL included), what does not fit this search
space is dropped with a message, and the trials are tagged in Optuna and MLflow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import (
    FAKE_CONFIG,
    fake_config,
    hposweep,
    load_study,
    mlflow_client,
    process_env,
    runs_by_kind,
)

BIN = Path(sys.executable).parent
TAG = "hposweep.warm_start"


def test_enqueued_sets_run_first_and_exactly_once_across_a_kill_and_resumes(workdir: Path) -> None:
    config = fake_config(workdir)
    command = [str(BIN / "hposweep"), "run", str(config), "study.max_trials=3",
               "study.enqueue=[{x: 0.11}, {x: 1.5}, {x: 0.22}]"]
    killed = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=300,
                            env=process_env(HPOSWEEP_KILL_AT="trial0:fold0:epoch0"))
    assert killed.returncode == -9
    assert ("study.enqueue[1]: dropped x=1.5 (outside [0, 1]); nothing is left: not queued"
            in killed.stderr)
    resumed = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=300,
                             env=process_env())
    assert resumed.returncode == 0, resumed.stderr
    more = hposweep("run", config, "study.max_trials=5", "study.enqueue=[{x: 0.11}, {x: 0.22}]")
    assert more.exit_code == 0, more.stderr
    trials = load_study("outputs", "fake_fake").trials
    # Trial 0 (x=0.11) was killed; its retry, trial 2, runs it again; then x=0.22.
    assert [t.params["x"] for t in trials[:3]] == [0.11, 0.22, 0.11]
    assert [t.state.name for t in trials[:3]] == ["FAIL", "COMPLETE", "COMPLETE"]
    finished = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(finished) == 5
    assert sorted(t.params["x"] for t in finished).count(0.11) == 1
    assert sorted(t.params["x"] for t in finished).count(0.22) == 1
    assert [t.user_attrs[TAG]["source"] for t in finished if TAG in t.user_attrs] == ["enqueue"] * 2
    runs = {r.data.tags["trial_number"]: r for r in runs_by_kind(mlflow_client(), "fake")["trial"]}
    tagged = sorted(n for n, r in runs.items() if r.data.tags.get(TAG) == "enqueue")
    assert tagged == ["0", "1", "2"], "the runs of the queued trials, the retry's included"


SOURCE = FAKE_CONFIG.replace('name: "fake_{backbone}"', 'name: "source"').replace(
    "x: {type: float, low: 0.0, high: 1.0}",
    "x: {type: float, low: 0.0, high: 1.0}\n  z: {type: categorical, choices: [a, b]}")
# This study's space: x narrower, z with one choice; quadratic peaks at x = 0.3.
TARGET = FAKE_CONFIG.replace(
    "x: {type: float, low: 0.0, high: 1.0}",
    "x: {type: float, low: 0.2, high: 1.0}\n  z: {type: categorical, choices: [a]}")


def test_warm_start_runs_the_best_of_another_study_first_keeping_what_fits(workdir: Path) -> None:
    (workdir / "src").mkdir()
    source = fake_config(workdir / "src", SOURCE)
    made = hposweep("run", source, "study.max_trials=5", "mlflow.enabled=false",
                    "study.enqueue=[{x: 0.3, z: a}, {x: 0.28, z: b}, {x: 0.1, z: a}, "
                    "{x: 0.7, z: a}, {x: 0.95, z: b}]")
    assert made.exit_code == 0, made.stderr
    config = fake_config(workdir, TARGET)
    warm = ["study.warm_start={from: source, top_k: 3}", "study.max_trials=4"]
    result = hposweep("run", config, *warm)
    assert result.exit_code == 0, result.stderr
    assert "warm start: 3 parameter set(s) from study 'source' (its best trials: 0, 1, 2)" in result.stdout
    assert "warm start from trial 1 of 'source': dropped z='b' (not one of ['a']); the others are " \
           "sampled" in result.stderr
    assert "warm start from trial 2 of 'source': dropped x=0.1 (outside [0.2, 1])" in result.stderr
    again = hposweep("run", config, *warm[:1], "study.max_trials=6")
    assert again.exit_code == 0, again.stderr
    assert "warm start" not in again.stdout + again.stderr, "queued once, never on resume"
    trials = load_study("outputs", "fake_fake").trials
    assert [t.params for t in trials[:2]] == [{"x": 0.3, "z": "a"}, {"x": 0.28, "z": "a"}]
    assert trials[2].params["z"] == "a" and 0.2 <= trials[2].params["x"] <= 1.0
    assert [(t.user_attrs[TAG]["source"], t.user_attrs[TAG]["from_trial"]) for t in trials[:3]] == \
        [("study:source", 0), ("study:source", 1), ("study:source", 2)]
    assert all(TAG not in t.user_attrs for t in trials[3:])
    runs = {r.data.tags["trial_number"]: r for r in runs_by_kind(mlflow_client(), "fake")["trial"]}
    assert sorted(n for n, r in runs.items() if r.data.tags.get(TAG) == "study:source") == ["0", "1", "2"]


def test_a_warm_start_source_that_does_not_exist_is_bad_input(workdir: Path) -> None:
    config = fake_config(workdir)
    missing = hposweep("run", config, "study.warm_start={from: nosuch}")
    assert missing.exit_code == 2
    assert "study.warm_start.from: no study in" in missing.stderr
    made = hposweep("run", config, "study.max_trials=1", "mlflow.enabled=false")
    assert made.exit_code == 0, made.stderr
    url = f"sqlite:///{(workdir / 'outputs' / 'hpo' / 'fake_fake' / 'study.db').resolve()}"
    other = hposweep("run", config, "study.name=other", f"study.warm_start={{from: '{url}#nope'}}")
    assert other.exit_code == 2
    assert "study.warm_start.from: no study 'nope' in" in other.stderr
    assert "(it has: fake_fake)" in other.stderr
    assert "Traceback" not in other.stderr
    assert not (workdir / "outputs" / "hpo" / "other" / "study.db").exists() or \
        not load_study("outputs", "other").trials, "no trial ran"
    by_url = hposweep("run", config, "study.name=other", f"study.warm_start={{from: '{url}'}}",
                      "study.max_trials=1", "mlflow.enabled=false")
    assert by_url.exit_code == 0, by_url.stderr
    assert load_study("outputs", "other").trials[0].params == load_study("outputs", "fake_fake").best_params


def test_a_dropped_parameter_reads_as_written_and_the_warning_names_what_is_sampled(
        workdir: Path) -> None:
    """Float arithmetic in the source study (a stepped 0.05 * 3) prints as 0.15; the
    warning names the parameters sampled instead and those taken as given."""
    import optuna
    from optuna.distributions import FloatDistribution

    source = optuna.create_study(study_name="src", storage=f"sqlite:///{workdir / 'src.db'}",
                                 direction="maximize")
    source.add_trial(optuna.trial.create_trial(
        params={"x": 0.05 * 3, "y": 0.05 * 7}, value=0.9,
        distributions={"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(0.0, 1.0)}))
    assert 0.05 * 3 == 0.15000000000000002
    config = fake_config(workdir, FAKE_CONFIG.replace(
        "x: {type: float, low: 0.0, high: 1.0}",
        "x: {type: float, low: 0.2, high: 1.0}\n  y: {type: float, low: 0.0, high: 1.0}"))
    result = hposweep("run", config, "study.max_trials=1", "mlflow.enabled=false",
                      f"study.warm_start={{from: 'sqlite:///{workdir / 'src.db'}#src'}}")
    assert result.exit_code == 0, result.stderr
    assert ("warning: warm start from trial 0 of 'src': dropped x=0.15 (outside [0.2, 1]); "
            "the others are sampled (x), with y=0.35 as given\n") in result.stderr
    (trial,) = load_study("outputs", "fake_fake").trials
    assert trial.params["y"] == 0.05 * 7 and 0.2 <= trial.params["x"] <= 1.0


@pytest.mark.parametrize("name", ["fake_{backbone}", "warm_{backbone}"], ids=["namesake", "other-name"])
def test_a_warm_started_study_never_draws_its_sources_parameter_sets(workdir: Path, name: str) -> None:
    """The same seed, a source of this name or another (the same config elsewhere, or a
    --fresh rerun warm-started from its archived self): the warm study's own draws are
    never the source's."""
    source = hposweep("run", fake_config(workdir), "output_dir=source", "mlflow.enabled=false")
    assert source.exit_code == 0, source.stderr
    drawn = {t.params["x"] for t in load_study("source", "fake_fake").trials}
    url = f"sqlite:///{(workdir / 'source' / 'hpo' / 'fake_fake' / 'study.db').resolve()}"
    warm = hposweep("run", fake_config(workdir), f"study.name={name}", "mlflow.enabled=false",
                    f"study.warm_start={{from: '{url}#fake_fake', top_k: 2}}")
    assert warm.exit_code == 0, warm.stderr
    study = load_study("outputs", name.format(backbone="fake"))
    queued = [t for t in study.trials if TAG in t.user_attrs]
    assert len(queued) == 2 and {t.params["x"] for t in queued} <= drawn
    own = [t.params["x"] for t in study.trials if TAG not in t.user_attrs]
    assert len(own) == 4 and not set(own) & drawn, "a draw of the source's own"


PRIOR = "hposweep.warm_start_prior"
RELATIVE = "tpe:relative_params:0"  # what TPE writes on a trial its model drew


def _source_with_finished_trials(path: Path, values: dict[float, float]) -> str:
    """A study of Optuna's own, one COMPLETE trial per ``{x: value}``, its URL#name."""
    import optuna
    from optuna.distributions import FloatDistribution

    url = f"sqlite:///{path}"
    source = optuna.create_study(study_name="src", storage=url, direction="maximize")
    for x, value in values.items():
        source.add_trial(optuna.trial.create_trial(
            params={"x": x}, value=value, distributions={"x": FloatDistribution(0.0, 1.0)}))
    return f"{url}#src"


def test_tpe_models_the_sources_finished_trials_from_the_first_drawn_trial_on(workdir: Path) -> None:
    """12 finished trials in the source, TPE's start-up 10: the first trial TPE draws
    (after the 2 queued sets) comes from its model, not at random (before: random until
    10 trials of this study had finished). The source's values are never this study's:
    its 9.0 (out of reach here: the objective peaks at 1.0) is no trial, best, count or
    status of this study, on a resume either."""
    values = {0.9: 9.0, **{round(0.05 + 0.07 * i, 2): 0.5 + 0.01 * i for i in range(11)}}
    source = _source_with_finished_trials(workdir / "src.db", values)
    config = fake_config(workdir, FAKE_CONFIG.replace("name: random", "name: tpe"))
    warm = [f"study.warm_start={{from: '{source}', top_k: 2}}", "mlflow.enabled=false"]
    first = hposweep("run", config, *warm, "study.max_trials=4")
    assert first.exit_code == 0, first.stderr
    assert ("warm start: the tpe sampler models 12 of the 12 finished trials of 'src' from the "
            "first trial on") in first.stdout
    study = load_study("outputs", "fake_fake")
    recorded = study.user_attrs[PRIOR]["warm_start:" + source]
    assert recorded["source"] == "study:src" and len(recorded["trials"]) == 12
    trials = study.trials
    assert [t.params["x"] for t in trials[:2]] == [0.9, 0.75]
    assert [RELATIVE in t.system_attrs for t in trials] == [False, False, True, True]
    again = hposweep("run", config, *warm, "study.max_trials=4", "--json")
    summary = again.json()["backbones"][0]
    assert summary["n_trials"] == summary["n_complete"] == 4, "the source's trials are not counted"
    own_best = max(trials, key=lambda t: t.value)
    assert summary["best_value"] != 9.0, "the source's unreachable 9.0 is never this study's best"
    assert (summary["best_trial"], summary["best_value"]) == (own_best.number, own_best.value)

    resumed = hposweep("run", config, *warm, "study.max_trials=6")
    assert resumed.exit_code == 0, resumed.stderr
    assert "warm start" not in resumed.stdout + resumed.stderr, "queued and recorded once"
    study = load_study("outputs", "fake_fake")
    assert study.user_attrs[PRIOR] == {"warm_start:" + source: recorded}
    assert [RELATIVE in t.system_attrs for t in study.trials] == [False, False, True, True, True, True]
    status = hposweep("status", config, *warm, "study.max_trials=6", "--json").json()[0]
    assert status["finished"] == len(status["trials"]) == 6 and status["remaining"] == 0
    assert status["best_value"] == max(t.value for t in study.trials) != 9.0
