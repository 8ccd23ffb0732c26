"""A two-objective sweep with a trainer whose metrics are known functions of the
parameters (``fake_trainers.two_objectives``: score = x, maximized; cost = x**2 + y,
minimized; constraint cost <= 0.6): the kept checkpoints are the feasible Pareto front's
after every trial, across resumes, two workers and kill -9; ``best``, ``export --select``,
MLflow and the plot agree with Optuna's ``study.best_trials``."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hposweep.objectives.pareto import knee, trim
from tests.helpers import hposweep, load_study, mlflow_client, process_env, runs_by_kind

BIN = Path(sys.executable).parent
BOUND = 0.6
UP_DOWN = [True, False]
CONFIG = f"""\
study:
  name: "mo_{{backbone}}"
  objectives: [{{metric: score, goal: maximize}}, {{metric: cost, goal: minimize}}]
  constraints: ["cost <= {BOUND}"]
  max_trials: 10
  sampler: {{name: random, seed: 0}}
  pruner: {{name: none}}
search_space:
  x: {{type: float, low: 0.0, high: 1.0}}
  y: {{type: float, low: 0.0, high: 0.1}}
backbones: [fake]
data:
  synthetic: {{sentences: 20, seed: 0}}
train:
  trainer: "fake_trainers:two_objectives"
  epochs: 1
k_fold: {{enabled: true, n_splits: 2}}
checkpoint: {{save_only_best: true, keep_best: 20}}
mlflow: {{experiment: mo}}
"""
NO_MLFLOW = "mlflow.enabled=false"


@pytest.fixture
def config(workdir: Path) -> Path:
    path = workdir / "mo.yaml"
    path.write_text(CONFIG)
    return path


def known(trial) -> tuple[float, float]:
    """The trial's objectives from its parameters (the trainer's closed form)."""
    x, y = trial.params["x"], trial.params["y"]
    return x, x ** 2 + y


def expected_front(study) -> dict[int, tuple[float, float]]:
    """The feasible front, by brute force from the parameters (not through Optuna)."""
    feasible = {t.number: known(t) for t in study.get_trials(states=[_complete()])
                if known(t)[1] <= BOUND}

    def dominated(v: tuple[float, float]) -> bool:
        return any(w[0] >= v[0] and w[1] <= v[1] and w != v for w in feasible.values())

    return {n: v for n, v in feasible.items() if not dominated(v)}


def _complete():
    from optuna.trial import TrialState

    return TrialState.COMPLETE


def kept_checkpoints(workdir: Path, killed: bool = False) -> set[int]:
    """The trials with a checkpoint on disk (each one complete), checked against best.json
    (``killed``: right after a kill -9, a staging dir or an unrecorded checkpoint may be
    there: the next run cleans up)."""
    root = workdir / "outputs" / "hpo" / "fake"
    on_disk = set()
    for directory in root.glob("trial_*"):
        number = int(directory.name.split("_")[1])
        checkpoint = directory / "checkpoint"
        meta = json.loads((checkpoint / "hposweep.json").read_text())
        weights = json.loads((checkpoint / "weights.json").read_text())
        assert meta["trial_number"] == number and set(weights) == {"x", "y"}
        on_disk.add(number)
    best = root / "best.json"
    recorded = ({e["trial_number"] for e in json.loads(best.read_text())["best"]}
                if best.exists() else set())
    if killed:
        return recorded
    assert recorded == on_disk, "best.json names exactly the checkpoints on disk"
    assert not list(root.glob(".tmp-*")), "nothing staged is left behind"
    return on_disk


def replay_the_rule(study, keep: int) -> set[int]:
    """The documented rule, trial by trial in the order they finished: a member that fell
    off the front is deleted; a new front member is kept if the rule, applied to the kept
    members and it (the whole front's knee first), keeps it."""
    trials = sorted(study.get_trials(states=[_complete()]), key=lambda t: t.datetime_complete)
    held: set[int] = set()
    seen = []
    for trial in trials:
        seen.append(trial)
        front = expected_front_of(seen)
        held &= set(front)
        if trial.number in front:
            chosen = trim({n: front[n] for n in held | {trial.number}}, UP_DOWN, keep,
                          knee(front, UP_DOWN))
            if trial.number in chosen:
                held = set(chosen)
    return held


def expected_front_of(trials) -> dict[int, tuple[float, float]]:
    class Only:
        def get_trials(self, states):
            return trials
    return expected_front(Only())


def test_the_kept_checkpoints_are_the_feasible_front_after_every_trial_across_resumes(
        workdir: Path, config: Path) -> None:
    infeasible_would_lead = False
    for n in range(1, 11):  # one more trial per run: every run after the first resumes
        result = hposweep("run", config, f"study.max_trials={n}", NO_MLFLOW, "--json")
        assert result.exit_code == 0, result.stderr
        study = load_study(workdir / "outputs", "mo_fake")
        front = expected_front(study)
        assert {t.number for t in study.best_trials} == set(front)
        assert kept_checkpoints(workdir) == set(front)
        for trial in study.get_trials(states=[_complete()]):
            assert tuple(trial.values) == pytest.approx(known(trial))
            best_score = max(known(t)[0] for t in study.get_trials(states=[_complete()]))
            infeasible_would_lead |= known(trial)[1] > BOUND and known(trial)[0] == best_score
    assert infeasible_would_lead, "an infeasible trial had the best score and was never kept"


def test_keep_best_bounds_the_front_by_the_documented_rule(workdir: Path, config: Path) -> None:
    for n in range(1, 11):
        assert hposweep("run", config, f"study.max_trials={n}", "checkpoint.keep_best=2",
                        NO_MLFLOW).exit_code == 0
        study = load_study(workdir / "outputs", "mo_fake")
        kept = kept_checkpoints(workdir)
        assert kept == replay_the_rule(study, keep=2)
        assert len(kept) <= 2 and kept <= set(expected_front(study))


def test_two_workers_keep_exactly_the_front(workdir: Path, config: Path) -> None:
    proc = subprocess.run([str(BIN / "hposweep"), "run", str(config), "--workers", "2",
                           "study.max_trials=16", NO_MLFLOW], cwd=workdir, env=process_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    study = load_study(workdir / "outputs", "mo_fake")
    assert len(study.get_trials(states=[_complete()])) == 16
    assert kept_checkpoints(workdir) == set(expected_front(study))


@pytest.mark.parametrize("point", ["checkpoint:staged", "checkpoint:renamed",
                                   "checkpoint:recorded"])
def test_a_kill_during_a_front_update_leaves_every_kept_checkpoint_complete(
        workdir: Path, config: Path, point: str) -> None:
    keep = ["checkpoint.keep_best=2", NO_MLFLOW]
    assert hposweep("run", config, "study.max_trials=3", *keep).exit_code == 0
    killed = subprocess.run([str(BIN / "hposweep"), "run", str(config), *keep],
                            cwd=workdir, env=process_env(HPOSWEEP_KILL_AT=point),
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    kept = kept_checkpoints(workdir, killed=True)  # every checkpoint complete, whatever the point
    assert kept, "the kill came during an update of the kept front"
    assert hposweep("run", config, *keep).exit_code == 0
    study = load_study(workdir / "outputs", "mo_fake")
    assert len(study.get_trials(states=[_complete()])) == 10
    assert kept_checkpoints(workdir) == replay_the_rule(study, keep=2)


@pytest.fixture
def finished(workdir: Path, config: Path) -> dict:
    result = hposweep("run", config, "checkpoint.keep_best=3", "mlflow.log_best_checkpoint=front",
                      "--json")
    assert result.exit_code == 0, result.stderr
    return result.json()["backbones"][0]


def test_best_export_mlflow_and_the_plot_agree_with_optunas_best_trials(
        workdir: Path, config: Path, finished: dict) -> None:
    overrides = ["checkpoint.keep_best=3", "mlflow.log_best_checkpoint=front"]
    study = load_study(workdir / "outputs", "mo_fake")
    front = {t.number: tuple(t.values) for t in study.best_trials}
    the_knee = knee(front, UP_DOWN)
    kept = kept_checkpoints(workdir)
    assert len(front) > 3 and len(kept) == 3, "the test needs a front larger than keep_best"

    shown = hposweep("best", config, *overrides, "--json").json()[0]
    assert {m["number"] for m in shown["front"]} == set(front)
    assert shown["objectives"] == finished["objectives"] == ["score", "cost"]
    assert shown["best_trial"] == the_knee == finished["best_trial"]
    assert {m["number"] for m in shown["front"] if m["checkpoint"]} == kept
    assert all(m["values"]["score"] == front[m["number"]][0] for m in shown["front"])
    table = hposweep("best", config, *overrides).stdout
    assert "Pareto front" in table and f"{the_knee} *" in table

    def exported(*select: str) -> int:
        target = workdir / f"export-{len(list(workdir.glob('export-*')))}"
        result = hposweep("export", config, *overrides, "--to", target, *select)
        assert result.exit_code == 0, result.stderr
        number = json.loads((target / "hposweep.json").read_text())["trial_number"]
        title = (target / "README.md").read_text().splitlines()[0]
        assert title == (f"# mo_fake: best trial {number}" if number == the_knee else
                         f"# mo_fake: a trial of the Pareto front (not its knee): {number}")
        return number

    assert exported() == exported("--select", "knee") == the_knee
    other = min(kept - {the_knee})
    assert exported("--select", f"trial {other}") == other
    cheapest = min(kept, key=lambda n: front[n][1])
    bound = front[cheapest][1]
    best_cheap = max((n for n in kept if front[n][1] <= bound), key=lambda n: front[n][0])
    assert exported("--select", f"cost <= {bound + 1e-9}") == best_cheap
    not_kept = next(n for n in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
                    if n.number not in front).number
    refused = hposweep("export", config, *overrides, "--to", workdir / "no",
                       "--select", f"trial {not_kept}")
    assert refused.exit_code == 2 and "names no kept member" in refused.stderr
    assert hposweep("export", config, *overrides, "--to", workdir / "no2",
                    "--select", "cost <= -1").exit_code == 2

    client = mlflow_client(workdir / "outputs")
    (parent,) = runs_by_kind(client, "mo")["parent"]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"pareto_front.json", "pareto_front.csv", "pareto"} <= artifacts
    table = json.loads(Path(client.download_artifacts(
        parent.info.run_id, "pareto_front.json", str(workdir / "dl"))).read_text())
    assert {m["number"] for m in table["front"]} == set(front)
    assert [m["number"] for m in table["front"] if m["knee"]] == [the_knee]
    rows = list(csv.DictReader(io.StringIO(Path(client.download_artifacts(
        parent.info.run_id, "pareto_front.csv", str(workdir / "dl"))).read_text())))
    assert {int(r["trial"]) for r in rows} == set(front)
    assert parent.data.metrics["knee_score"] == pytest.approx(front[the_knee][0])
    assert parent.data.metrics["knee_cost"] == pytest.approx(front[the_knee][1])
    assert parent.data.tags["best_trial_number"] == str(the_knee)
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "pareto")}
    assert logged == {f"pareto/trial_{n}" for n in kept}

    plot = hposweep("plot", config, *overrides, "--out", workdir / "plots")
    assert plot.exit_code == 0, plot.stderr
    assert plot.stderr.count("warning") == 1, plot.stderr
    assert "no optimization history plot (several objectives" in plot.stderr, "said, not silent"
    page = workdir / "plots" / "mo_fake.html"
    plotted = pareto_traces(page)
    assert not any("colorbar" in t.get("marker", {}) for t in plotted), "no colour bar"
    traces = {t["name"]: set(t["customdata"]) for t in plotted}
    assert traces["Pareto front"] == set(front)
    assert traces["knee (the best trial)"] == {the_knee} and traces["kept a checkpoint"] == kept
    infeasible = {t.number for t in study.trials if t.state.name == "COMPLETE"
                  and any(c > 0 for c in t.constraints.values())}
    assert infeasible and traces["infeasible"] == infeasible
    sections = {s.split("</h2>")[0]: s for s in page.read_text().split("<h2>")[1:]}
    (importances,) = (v for k, v in sections.items() if k.startswith("param importances (from "))
    assert '"name":"score"' in importances, "the first objective's importances"
    assert '"text":"score"' in sections["parallel coordinate"] and '"text":"score"' in sections["slice"]


def pareto_traces(page: Path) -> list[dict]:
    """The traces of the Pareto-front plot."""
    html = page.read_text()
    start = html.index("Plotly.newPlot(", html.index("<h2>pareto front</h2>"))
    start = html.index("[", start)
    traces, _ = json.JSONDecoder().raw_decode(html[start:])
    return traces


def test_one_objective_with_a_constraint_never_keeps_an_infeasible_best(
        workdir: Path, config: Path) -> None:
    single = CONFIG.replace(
        "  objectives: [{metric: score, goal: maximize}, {metric: cost, goal: minimize}]\n",
        "  objective_metric: score\n")
    config.write_text(single)
    result = hposweep("run", config, NO_MLFLOW, "checkpoint.keep_best=1", "--json")
    assert result.exit_code == 0, result.stderr
    study = load_study(workdir / "outputs", "mo_fake")
    trials = study.get_trials(states=[_complete()])
    feasible = [t for t in trials if known(t)[1] <= BOUND]
    assert max(known(t)[0] for t in trials) > max(known(t)[0] for t in feasible), \
        "an infeasible trial has the highest score"
    best = max(feasible, key=lambda t: known(t)[0]).number
    assert study.best_trial.number == best == result.json()["backbones"][0]["best_trial"]
    assert kept_checkpoints(workdir) == {best}
    assert hposweep("best", config, "--json").json()[0]["best_trial"] == best


def test_with_keep_best_1_the_best_trial_is_the_kept_member_and_exports(
        workdir: Path, config: Path) -> None:
    """The knee is the sweep's best trial, so it is chosen among the members that kept a
    checkpoint (was: the whole front's knee, whose checkpoint was gone, or never kept:
    `export` then found no checkpoint of the best trial)."""
    assert hposweep("run", config, NO_MLFLOW, "checkpoint.keep_best=1").exit_code == 0
    study = load_study(workdir / "outputs", "mo_fake")
    assert len(study.best_trials) > 1
    (kept,) = kept_checkpoints(workdir)
    shown = hposweep("best", config, NO_MLFLOW, "--json").json()[0]
    assert shown["best_trial"] == kept and shown["checkpoint"]
    result = hposweep("export", config, NO_MLFLOW, "--to", workdir / "prod")
    assert result.exit_code == 0, result.stderr
    assert json.loads((workdir / "prod" / "hposweep.json").read_text())["trial_number"] == kept


@pytest.mark.parametrize("workers", [1, 2])
def test_no_feasible_trial_is_exit_1_with_or_without_workers(
        workdir: Path, config: Path, workers: int) -> None:
    config.write_text(CONFIG.replace(f"cost <= {BOUND}", "cost <= -1").replace(
        "max_trials: 10", "max_trials: 3"))
    proc = subprocess.run([str(BIN / "hposweep"), "run", str(config), "--workers", str(workers),
                           NO_MLFLOW], cwd=workdir, env=process_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "no feasible trial in at least one study" in proc.stderr
    assert len(load_study(workdir / "outputs", "mo_fake").get_trials(states=[_complete()])) == 3


def test_the_built_in_trainer_trades_span_f1_against_its_latency(workdir: Path) -> None:
    """Several objectives through the real trainer (it reports every epoch: Optuna's
    pruner never sees a multi-objective report); its cost metrics are the mean over folds."""
    from tests.conftest import FAST, SMOKE

    config = workdir / "front.yaml"
    config.write_text("".join(line for line in SMOKE.read_text().splitlines(keepends=True)
                              if "objective_" not in line))
    result = hposweep("run", config, *FAST, "study.max_trials=2", "study.sampler.name=nsga2",
                      "study.objectives=[{metric: macro-f1-span, goal: maximize}, "
                      "{metric: latency_ms, goal: minimize}]",
                      "study.constraints=[n_parameters <= 30, checkpoint_mb >= 0.01]", "--json")
    assert result.exit_code == 0, result.stderr
    study = load_study(workdir / "outputs", "smoke_tiny-bert")
    trials = study.get_trials(states=[_complete()])
    assert len(trials) == 2 and all(len(t.values) == 2 and t.values[1] > 0 for t in trials)
    assert all(set(t.constraints) == {"n_parameters <= 30", "checkpoint_mb >= 0.01"}
               and all(v <= 0 for v in t.constraints.values()) for t in trials)
    assert all(t.intermediate_values == {} for t in trials)
    client = mlflow_client(workdir / "outputs")
    metrics = runs_by_kind(client, "hposweep-smoke")["trial"][0].data.metrics
    assert {"latency_ms", "latency_ms_iqr", "n_parameters", "checkpoint_mb",
            "fold0/latency_ms"} <= set(metrics)
    assert metrics["latency_ms"] == pytest.approx(
        (metrics["fold0/latency_ms"] + metrics["fold1/latency_ms"]) / 2)
    front = result.json()["backbones"][0]["front"]
    assert {m["number"] for m in front} == {t.number for t in study.best_trials}


def test_the_log_and_the_boxes_speak_of_the_front_and_its_knee(workdir: Path,
                                                               config: Path) -> None:
    """Two objectives have no one best trial: a kept trial joins the front, the summary
    and `best` name the knee with its value in each objective; an infeasible or an
    enqueued trial says so in the table."""
    enqueued = ["study.enqueue=[{x: 0.9, y: 0.1}]"]  # cost 0.91: infeasible
    result = hposweep("run", config, NO_MLFLOW, "study.max_trials=6", *enqueued)
    assert result.exit_code == 0, result.stderr
    study = load_study(workdir / "outputs", "mo_fake")
    the_knee = knee({t.number: tuple(t.values) for t in study.best_trials}, UP_DOWN)
    score, cost = study.trials[the_knee].values
    assert "new best" not in result.stdout
    assert "(joins the front, checkpoint kept: " in result.stdout
    line = f"knee of the Pareto front: trial {the_knee}  score = {score:.4f}, cost = {cost:.4f}"
    assert line in result.stdout
    shown = hposweep("best", config, NO_MLFLOW, *enqueued).stdout
    assert line in shown and "best trial:" not in shown
    table = hposweep("status", config, NO_MLFLOW, *enqueued).stdout
    assert "queued from study.enqueue[0]; infeasible: cost <= 0.6 not met" in table
    infeasible = [t.number for t in study.trials if t.constraints["cost <= 0.6"] > 0]
    assert table.count("infeasible: cost <= 0.6 not met") == len(infeasible)
