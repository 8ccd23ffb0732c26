"""What the sweep writes for optuna-dashboard without importing it (notes, figures), read
back by the real optuna-dashboard's own readers, on a real SQLite storage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna_dashboard._custom_plot_data import get_plotly_graph_objects
from optuna_dashboard._note import get_note_from_system_attrs

from hposweep.study.notes import CHUNK, write_figures, write_study_note, write_trial_note


class CountingStorage:
    """A real storage whose study-attribute writes are counted."""

    def __init__(self, storage: Any) -> None:
        self.storage, self.writes = storage, 0

    def set_study_system_attr(self, *args: Any) -> None:
        self.writes += 1
        self.storage.set_study_system_attr(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.storage, name)


@pytest.fixture
def storage(tmp_path: Path) -> CountingStorage:
    return CountingStorage(optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}"))


def figure_json(points: int) -> str:
    return json.dumps({"data": [{"x": list(range(points)), "y": list(range(points))}],
                       "layout": {"title": {"text": "fold scores"}}})


def shown(storage: CountingStorage, study_id: int) -> dict[str, str]:
    return get_plotly_graph_objects(storage.get_study_system_attrs(study_id))


def test_figures_are_what_optuna_dashboard_reads_back(storage: CountingStorage) -> None:
    study_id = storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "s")
    long, short = figure_json(2000), figure_json(3)
    assert len(long) > 3 * CHUNK
    write_figures(storage, study_id, {"hposweep-fold-scores": long, "hposweep-history": short})
    assert shown(storage, study_id) == {"hposweep-fold-scores": long, "hposweep-history": short}


def test_an_unchanged_figure_costs_no_write_and_a_shorter_one_replaces_it(
        storage: CountingStorage) -> None:
    study_id = storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "s")
    long, shorter = figure_json(2000), figure_json(10)
    first = write_figures(storage, study_id, {"hposweep-fold-scores": long})
    assert first == storage.writes > 3
    assert write_figures(storage, study_id, {"hposweep-fold-scores": long}) == 0
    assert storage.writes == first, "the same figure again: nothing written"
    write_figures(storage, study_id, {"hposweep-fold-scores": shorter})
    assert shown(storage, study_id) == {"hposweep-fold-scores": shorter}
    assert json.loads(shown(storage, study_id)["hposweep-fold-scores"])


def test_notes_are_what_optuna_dashboard_reads_back(storage: CountingStorage) -> None:
    study_id = storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "s")
    trial_id = storage.create_new_trial(study_id)
    write_trial_note(storage, study_id, trial_id, "**Trial 0**\n" + "x" * 3 * CHUNK)
    write_study_note(storage, study_id, "long " * CHUNK)
    write_study_note(storage, study_id, "## short")
    attrs = storage.get_study_system_attrs(study_id)
    assert get_note_from_system_attrs(attrs, trial_id)["body"] == "**Trial 0**\n" + "x" * 3 * CHUNK
    assert get_note_from_system_attrs(attrs, None) == {"version": 2, "body": "## short"}


def test_figures_of_a_study_with_no_feasible_trial(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Every trial broke a constraint: the fold scores are drawn with no best (the sweep's
    end and ``hposweep plot`` used to raise Optuna's "No feasible trials")."""
    from hposweep.config.loading import load
    from hposweep.reports.plots import dashboard_figures
    from tests.helpers import fake_config

    monkeypatch.chdir(tmp_path)
    cfg = load(fake_config(tmp_path), ['study.constraints=["score <= 0.1"]'],
               check_files=False).config
    study = optuna.create_study(direction="maximize")
    for value in (0.5, 0.7):
        study.add_trial(optuna.trial.create_trial(
            params={"x": value}, distributions={"x": optuna.distributions.FloatDistribution(0, 1)},
            value=value, user_attrs={"fold_values": [value, value]},
            system_attrs={"constraints": [value - 0.1]}))
    figures = dashboard_figures(study, cfg)
    folds = json.loads(figures["hposweep-fold-scores"])
    assert not any(t["name"].endswith(", the best") for t in folds["data"])
    assert len(folds["data"]) == 2


def test_many_trials_are_drawn_as_a_few_traces_with_every_point(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond MAX_TRACES trials the per-trial plots join their lines (a gap between two
    trials) into a trace per colour band and line style: the figures stay small."""
    from hposweep.config.loading import load
    from hposweep.reports.plots import COLOUR_BANDS, MAX_TRACES, dashboard_figures
    from tests.helpers import fake_config

    monkeypatch.chdir(tmp_path)
    cfg = load(fake_config(tmp_path), [], check_files=False).config  # 2 folds, 1 epoch
    study = optuna.create_study(direction="maximize")
    n = 3 * MAX_TRACES
    for number in range(n):
        value = (number * 37 % n) / n
        study.add_trial(optuna.trial.create_trial(
            params={"x": value}, distributions={"x": optuna.distributions.FloatDistribution(0, 1)},
            value=value, intermediate_values={0: value, 1: value},
            user_attrs={"fold_values": [value, value]}))
    figures = {k: json.loads(v) for k, v in dashboard_figures(study, cfg).items()}
    best = study.best_trial.number
    folds = figures["hposweep-fold-scores"]["data"]
    assert [t["name"] for t in folds] == ["other trials (complete)",
                                         f"trial {best} (complete), the best"]
    others = [d for d in folds[0]["customdata"] if d is not None]
    assert sorted(set(others)) == [i for i in range(n) if i != best]
    lines = figures["hposweep-intermediate-values"]["data"]
    assert f"{n} trials, coloured by" in figures["hposweep-intermediate-values"]["layout"][
        "title"]["text"]
    assert len(lines) <= COLOUR_BANDS
    points = [d[0] for t in lines for d in t["customdata"] if d is not None]
    assert sorted(points) == list(range(n)), "every trial's epoch once"
    assert sum(len(v) for v in dashboard_figures(study, cfg).values()) < 60_000


def test_many_trials_of_running_estimates_are_drawn_as_a_few_traces_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The running-estimates figure (a k-fold study of estimates) joins its lines beyond
    MAX_TRACES trials as the intermediate-values figure does."""
    from hposweep.config.loading import load
    from hposweep.reports.plots import COLOUR_BANDS, MAX_TRACES, dashboard_figures
    from hposweep.results import REPORT_STEPS_ATTR
    from tests.helpers import fake_config

    monkeypatch.chdir(tmp_path)
    cfg = load(fake_config(tmp_path), [], check_files=False).config  # 2 folds, 1 epoch
    study = optuna.create_study(direction="maximize")
    study.set_user_attr(REPORT_STEPS_ATTR, "estimate")
    n = MAX_TRACES + 1
    for number in range(n):
        value = (number * 37 % n) / n
        study.add_trial(optuna.trial.create_trial(
            params={"x": value}, distributions={"x": optuna.distributions.FloatDistribution(0, 1)},
            value=value, intermediate_values={0: value, 1: value}))
    figure = json.loads(
        dashboard_figures(study, cfg)["hposweep-intermediate-values-running-estimates-of-the-"
                                      "objective"])
    assert f"{n} trials, coloured by" in figure["layout"]["title"]["text"]
    assert len(figure["data"]) <= COLOUR_BANDS
    points = sorted((d[0], d[1]) for t in figure["data"] for d in t["customdata"]
                    if d is not None)
    assert points == [(i, fold) for i in range(n) for fold in (1, 2)], "each fold-epoch once"
