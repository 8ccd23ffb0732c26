"""``hposweep dashboard`` finds the config's studies by their ids alone: optuna-dashboard reads
their trials when a page asks, so start-up does not read every trial first."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import optuna
import pytest

from hposweep.config.loading import load
from hposweep.config.schema import study_name_for
from hposweep.errors import UserError
from hposweep.reports import dashboard as board
from hposweep.study.storage import make_storage, storage_url
from tests.helpers import fake_config


def test_studies_are_found_without_reading_their_trials(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load(fake_config(tmp_path), ["backbones=[a,b]"], check_files=False).config
    name = study_name_for(cfg, "a")
    study = optuna.create_study(study_name=name, storage=make_storage(storage_url(cfg, name)))
    study.enqueue_trial({"x": 0.5})

    def no_trials(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError("the trials were read before serving")

    monkeypatch.setattr(optuna.storages.RDBStorage, "get_all_trials", no_trials)
    warned: list[str] = []
    (server,) = board.plan(cfg, warned.append)
    assert server.studies == [("a", study._study_id)]
    assert warned == [f"b: no study 'fake_b' in sqlite:///"
                      f"{tmp_path / 'outputs' / 'hpo' / 'fake_b' / 'study.db'} yet"]
    assert not (tmp_path / "outputs" / "hpo" / "fake_b").exists(), "looking created nothing"


def test_no_study_at_all_is_one_clear_error(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load(fake_config(tmp_path), [], check_files=False).config
    with pytest.raises(UserError, match="no study to show yet"):
        board.plan(cfg, lambda _: None)
