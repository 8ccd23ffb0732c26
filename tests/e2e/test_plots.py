"""`hposweep plot`: the optimization history includes pruned trials, the intermediate
values of a k-fold study are its running estimates of the objective per fold-epoch,
labelled so (a study of raw epoch scores: per epoch, the mean over folds), and the page
fits a 1400 px wide browser window (checked in a real headless Chromium when there is one)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hposweep.reports.plots import fold_means
from tests.helpers import fake_config, hposweep, load_study

EPOCHS, FOLDS = 4, 3
SWEEP = ["train.trainer=fake_trainers:learning_curve", f"train.epochs={EPOCHS}",
         f"k_fold.n_splits={FOLDS}", "study.pruner.name=median", "study.pruner.n_startup_trials=2",
         "study.max_trials=12", "mlflow.enabled=false",
         # many parameters: Optuna sizes its slice plot 300 px wide per parameter
         "search_space.lr={type: float, low: 0.0001, high: 0.1, log: true}",
         "search_space.depth={type: int, low: 1, high: 8}",
         "search_space.width={type: categorical, choices: [16, 32, 64]}",
         "search_space.a_long_parameter_name={type: float, low: 0, high: 1}"]


@pytest.fixture
def plotted(workdir: Path) -> Path:
    config = fake_config(workdir)
    assert hposweep("run", config, *SWEEP).exit_code == 0
    result = hposweep("plot", config, *SWEEP, "--out", workdir / "plots")
    assert result.exit_code == 0, result.stderr
    return workdir / "plots" / "fake_fake.html"


def test_the_history_shows_pruned_trials(plotted: Path, workdir: Path) -> None:
    trials = load_study(workdir / "outputs", "fake_fake").trials
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert pruned, "the sweep pruned trials"
    history = plotted.read_text().split("<h2>")[1]
    assert history.startswith("optimization history")
    assert '"name":"pruned"' in history and '"name":"complete"' in history


def test_intermediate_values_are_the_running_estimates_labelled_as_such(
        plotted: Path, workdir: Path) -> None:
    section = plotted.read_text().split(
        "<h2>intermediate values: running estimates of the objective</h2>")[1]
    assert "running estimate: mean of the finished folds and the current fold's predicted score" \
        in section
    trials = load_study(workdir / "outputs", "fake_fake").trials
    complete = next(t for t in trials if t.state.name == "COMPLETE")
    steps = sorted(complete.intermediate_values)
    assert steps == list(range(FOLDS * EPOCHS)), "every fold-epoch, in order"
    assert complete.intermediate_values[steps[-1]] == pytest.approx(complete.value), \
        "the last estimate is the trial's value"
    (line,) = (t for t in section_traces(section) if t["name"] == f"trial {complete.number} (complete)")
    assert line["x"] == [s + 1 for s in steps]
    assert line["y"] == pytest.approx([complete.intermediate_values[s] for s in steps])


def section_traces(html: str) -> list[dict]:
    import json

    traces, _ = json.JSONDecoder().raw_decode(html[html.index("[", html.index("Plotly.newPlot(")):])
    return traces


def test_a_trial_without_k_fold_has_one_point_per_reported_step() -> None:
    assert fold_means({0: 0.1, 1: 0.2, 2: 0.4}, epochs=1, n_folds=1) == [
        (0, 0.1, 1), (1, 0.2, 1), (2, 0.4, 1)]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium to render the page")
def test_the_page_never_scrolls_sideways_at_1400_px(plotted: Path, tmp_path: Path) -> None:
    probe = tmp_path / "probe.html"
    probe.write_text(plotted.read_text().replace("</body>", (
        "<script>addEventListener('load', () => setTimeout(() => { document.title = "
        "'width ' + document.documentElement.scrollWidth + ' of ' + "
        "document.documentElement.clientWidth; }, 500));</script></body>")))
    dom = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,900",
         "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120).stdout
    scroll, client = map(int, re.search(r"<title>width (\d+) of (\d+)</title>", dom).groups())
    assert scroll <= client, f"the page is {scroll} px wide in a {client} px window"


DARKEST = "rgb(8,48,107)"  # the end of plotly's "Blues"


def section(page: Path, title: str) -> list[dict]:
    """The traces of the plot under ``<h2>title...``."""
    import json

    html = page.read_text()
    start = html.index("Plotly.newPlot(", html.index(f"<h2>{title}"))
    traces, _ = json.JSONDecoder().raw_decode(html[html.index("[", start):])
    return traces


def test_colour_scales_are_darker_for_better_and_lines_beyond_ten_by_value(
        plotted: Path, workdir: Path) -> None:
    parallel = section(plotted, "parallel coordinate")
    (scale,) = (t["marker"] for t in parallel if "colorbar" in t.get("marker", {}))
    assert scale["reversescale"] is False, "score is maximized: high is dark"
    best = max((t for t in parallel if t["mode"] == "lines"), key=lambda t: t["y"][0])
    assert best["line"]["color"].replace(" ", "") == DARKEST, "the best trial's line is darkest"
    for trace in section(plotted, "slice"):
        assert trace["marker"]["color"] == trace["y"], "coloured by value, not trial number"
        assert trace["marker"]["reversescale"] is False
    lines = section(plotted, "intermediate values")
    assert len(lines) > 10, "the sweep has more trials than a palette has colours"
    last = {t["name"]: t["y"][-1] for t in lines}
    colour = {t["name"]: t["line"]["color"] for t in lines}
    darkest = max(last, key=last.get)
    assert colour[darkest].replace(" ", "") == DARKEST and len(set(colour.values())) > 5


def test_fold_scores_show_every_trial_against_the_best(plotted: Path, workdir: Path) -> None:
    study = load_study(workdir / "outputs", "fake_fake")
    traces = {t["name"]: t for t in section(plotted, "fold scores")}
    best = study.best_trial
    shown = traces[f"trial {best.number} (complete), the best"]
    assert shown["y"] == best.user_attrs["fold_values"] and shown["line"]["width"] == 4
    assert len(traces) == sum(1 for t in study.trials if "fold_values" in t.user_attrs)


def test_few_trials_get_no_importances_but_a_warning_saying_why(workdir: Path) -> None:
    config = fake_config(workdir)
    assert hposweep("run", config, "study.max_trials=4", "mlflow.enabled=false").exit_code == 0
    result = hposweep("plot", config, "study.max_trials=4", "--out", workdir / "plots")
    assert result.exit_code == 0
    assert ("no param importances plot (4 completed trials; importances need 10 to mean "
            "something)") in result.stderr
    assert "<h2>param importances" not in (workdir / "plots" / "fake_fake.html").read_text()


def test_a_latency_outlier_puts_the_pareto_axis_on_a_log_scale() -> None:
    import optuna

    from hposweep.objectives.spec import Objective
    from hposweep.reports.plots import pareto_figure

    study = optuna.create_study(directions=["maximize", "minimize"])
    for score, latency in ((0.8, 1.0), (0.9, 1.3), (0.7, 0.9), (0.5, 450.0)):
        study.add_trial(optuna.trial.create_trial(values=[score, latency]))
    figure = pareto_figure(study, [Objective("f1", "maximize"), Objective("latency_ms", "minimize")],
                           [])
    assert figure.layout.yaxis.type == "log"
    assert figure.layout.yaxis.title.text == "latency_ms (minimize), log scale"
    assert figure.layout.xaxis.type == "linear"
