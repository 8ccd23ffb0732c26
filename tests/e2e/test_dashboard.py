"""What a study carries for a dashboard (metric names, each trial's facts as user attributes,
a note per study and per trial that kept a checkpoint, hposweep's figures), the MLflow side
(links to the training view, tags), and ``hposweep dashboard``: optuna-dashboard on the
study's own storage, read-only, Ctrl-C ends it."""

from __future__ import annotations

import hashlib
import json
import shlex
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hposweep.config.loading import load
from hposweep.reports import dashboard as board
from hposweep.study.notes import write_trial_note
from hposweep.tracking.tracker import ui_link
from tests.helpers import fake_config, hposweep, load_study, mlflow_client, process_env, runs_by_kind

BIN = Path(sys.executable).parent
SWEEP = ["train.trainer=fake_trainers:fails_when_x_high", "study.max_trials=6",
         "study.max_failures=50", "study.enqueue=[{x: 0.9}, {x: 0.3}]"]


def sweep(workdir: Path, *overrides: str) -> Path:
    config = fake_config(workdir)
    result = hposweep("run", config, *SWEEP, *overrides)
    assert result.exit_code == 0, result.stderr
    return config


@contextmanager
def serving(config: Path, *overrides: str) -> Iterator[list[board.Server]]:
    """The config's dashboards, in this process, on free ports."""
    cfg = load(config, [*SWEEP, *overrides], check_files=False).config
    servers = board.plan(cfg, print)
    board.start(servers, "127.0.0.1", 0)
    try:
        yield servers
    finally:
        board.stop(servers)


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def study_detail(server: board.Server) -> dict[str, Any]:
    (_, study_id), = server.studies
    return get(f"{server.url}/api/studies/{study_id}")


def notes_by_trial(detail: dict[str, Any]) -> dict[int, str]:
    return {t["number"]: t["note"]["body"] for t in detail["trials"]}


def attrs_by_trial(detail: dict[str, Any]) -> dict[int, dict[str, str]]:
    """Each trial's user attributes as the dashboard shows them (key, value as text)."""
    return {t["number"]: {a["key"]: a["value"] for a in t["user_attrs"]} for t in detail["trials"]}


def improvements(study: Any) -> set[int]:
    """The trials that were the best one when they finished (one worker: in number order)."""
    best, found = None, set()
    for trial in study.trials:
        if trial.state.name == "COMPLETE" and (best is None or trial.value > best):
            best = trial.value
            found.add(trial.number)
    return found


# ------------------------------------------------------------ what the study carries


def test_a_single_objective_study_names_its_metric(workdir: Path) -> None:
    sweep(workdir)
    assert load_study(workdir / "outputs", "fake_fake").metric_names == ["score"]


def test_trials_facts_are_user_attrs_kept_trials_have_a_note_and_figures_are_shown(
        workdir: Path) -> None:
    """One sweep: each trial's facts as user attributes, a note on the trials that kept a
    checkpoint only, and hposweep's figures on the study's page."""
    config = sweep(workdir)
    study = load_study(workdir / "outputs", "fake_fake")
    with serving(config) as (server,):
        detail = study_detail(server)
    attrs, notes = attrs_by_trial(detail), notes_by_trial(detail)
    assert study.trials[0].state.name == "FAIL"  # enqueued x=0.9: the trainer raises
    failed = attrs[0]
    assert json.loads(failed["hposweep.warm_start"])["source"] == "enqueue"
    assert failed["fail_reason"] == "RuntimeError: simulated crash at x=0.90"
    run_id = study.trials[0].user_attrs["hposweep.trial"]["mlflow_run_id"]
    assert failed["hposweep.trial"].startswith(f'{{"mlflow_run_id": "{run_id}"'), (
        "the run first (a local store: its id), before the owner and the device")
    best = study.best_trial
    assert len(json.loads(attrs[best.number]["fold_values"])) == 2
    kept = {n for n, body in notes.items() if body}
    assert kept == improvements(study) and best.number in kept
    assert len(kept) < len(study.trials), "a note on few trials, not on every one"
    for number in kept:
        run_id = study.trials[number].user_attrs["hposweep.trial"]["mlflow_run_id"]
        assert f"MLflow run: `{run_id}`" in notes[number]
        assert "fold scores: fold 1: " in notes[number] and "checkpoint: kept" in notes[number]

    figures = {f["id"]: json.loads(f["graph_object"]) for f in detail["plotly_graph_objects"]}
    assert sorted(figures) == [
        "hposweep-fold-scores", "hposweep-intermediate-values-running-estimates-of-the-objective",
        "hposweep-optimization-history"]
    folds = figures["hposweep-fold-scores"]
    assert folds["layout"]["title"]["text"] == "fold scores"
    assert any(t["name"].endswith(", the best") for t in folds["data"])
    history = figures["hposweep-optimization-history"]
    assert {t["name"] for t in history["data"]} >= {"complete", "best so far"}


def test_the_study_note_names_the_settings_the_best_trial_and_its_checkpoint(
        workdir: Path) -> None:
    config = sweep(workdir)
    study = load_study(workdir / "outputs", "fake_fake")
    with serving(config) as (server,):
        detail = study_detail(server)
    note = detail["note"]["body"]
    assert detail["objective_names"] == ["score"]
    assert "- objective: `score` (maximize)" in note and "| x | float[0, 1] |" in note
    assert f"**best trial: trial {study.best_trial.number}**" in note
    best_json = json.loads((workdir / "outputs" / "hpo" / "fake" / "best.json").read_text())
    assert f"{best_json['best'][0]['checkpoint']}`" in note.split("checkpoint: `")[-1]


def test_a_study_made_before_gets_names_notes_and_figures_on_its_next_run(
        workdir: Path) -> None:
    config = sweep(workdir, "study.max_trials=3")
    database = workdir / "outputs" / "hpo" / "fake_fake" / "study.db"
    with sqlite3.connect(database) as db:  # what a study made before this release holds
        db.execute("DELETE FROM study_system_attributes")
    old = load_study(workdir / "outputs", "fake_fake")
    assert old.metric_names is None
    old_note = "**Trial 0** (fail)\n\n- checkpoint: not kept\n"  # an earlier version's
    write_trial_note(old._storage, old._study_id, old.trials[0]._trial_id, old_note)
    sweep(workdir, "study.max_trials=4")
    study = load_study(workdir / "outputs", "fake_fake")
    assert study.metric_names == ["score"]
    with serving(config, "study.max_trials=4") as (server,):
        detail = study_detail(server)
    notes = notes_by_trial(detail)
    assert notes[0] == old_note, "an earlier version's note on a trial is left as it was"
    noted = {n for n, body in notes.items() if body} - {0}
    kept_before = max((t for t in study.trials[:3] if t.state.name == "COMPLETE"),
                      key=lambda t: t.value).number
    assert kept_before in noted, "the trial that held the kept checkpoint has its note again"
    assert study.best_trial.number in noted and noted <= improvements(study)
    assert "best trial: trial" in detail["note"]["body"]
    assert len(detail["plotly_graph_objects"]) == 3


# ------------------------------------------------------------ MLflow side


def test_mlflow_links_open_the_training_view_and_carry_no_credentials() -> None:
    assert ui_link("https://user:secret@mlflow.example.com:5000/", "3", "abc") == (
        "https://mlflow.example.com:5000/#/experiments/3/runs/abc?workflowType=machine_learning")
    assert ui_link("http://host/mlflow", "3") == (
        "http://host/mlflow/#/experiments/3?workflowType=machine_learning")
    assert ui_link("sqlite:///outputs/mlflow.db", "3", "abc") is None


def test_the_experiment_is_a_model_training_one_and_runs_carry_the_study(workdir: Path) -> None:
    config = sweep(workdir)
    client = mlflow_client(workdir / "outputs")
    experiment = client.get_experiment_by_name("fake")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = runs_by_kind(client, "fake")
    (parent,) = runs["parent"]
    assert parent.data.tags["hposweep.dashboard"] == shlex.join(
        ["hposweep", "dashboard", str(config), *SWEEP])
    study = load_study(workdir / "outputs", "fake_fake")
    by_run = {t.user_attrs["hposweep.trial"]["mlflow_run_id"]: t.number for t in study.trials}
    for run in runs["trial"]:
        assert run.data.tags["trial_number"] == str(by_run[run.info.run_id])
        assert run.data.tags["hposweep.study_name"] == "fake_fake"


# ------------------------------------------------------------ the command


def test_dashboard_prints_the_url_serves_read_only_and_ctrl_c_ends_it(workdir: Path) -> None:
    config = sweep(workdir)
    database = workdir / "outputs" / "hpo" / "fake_fake" / "study.db"
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    with running_dashboard(workdir, config) as (proc, url):
        assert url.endswith("/dashboard/studies/1")
        base = url.split("/dashboard/")[0]
        assert get(f"{base}/api/studies")["study_summaries"][0]["study_name"] == "fake_fake"
        for method, path in (("PUT", "/api/studies/1/note"), ("DELETE", "/api/studies/1"),
                             ("POST", "/api/studies/1/rename")):
            request = urllib.request.Request(f"{base}{path}", method=method, data=b'{}',
                                             headers={"Content-Type": "application/json"})
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=30)
            assert refused.value.code == 405
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr
        assert "Traceback" not in stderr
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before


@contextmanager
def running_dashboard(workdir: Path, config: Path, *args: str
                      ) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``hposweep dashboard`` in its own process on a free port, and the study URL it printed."""
    proc = subprocess.Popen(
        [BIN / "hposweep", "dashboard", config, *SWEEP, "--port", "0", *args], cwd=workdir,
        env=process_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line, ready = proc.stdout.readline(), proc.stdout.readline()
        if not line.startswith("fake: http://") or ready != "Ctrl-C stops the dashboard\n":
            proc.kill()
            raise AssertionError(f"no URL printed: {line!r} {ready!r} {proc.communicate()}")
        yield proc, line.split(": ", 1)[1].strip()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_binding_another_host_warns_that_there_is_no_authentication(workdir: Path) -> None:
    config = sweep(workdir, "study.max_trials=1")
    with running_dashboard(workdir, config, "--host", "0.0.0.0") as (proc, _):
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "warning: listening on 0.0.0.0: the dashboard has no authentication" in stderr
    assert not board.exposed("127.0.0.1") and not board.exposed("::1")
    assert board.exposed("192.168.1.4") and board.exposed("my-host")


def test_without_the_extra_it_exits_2_naming_it(workdir: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    config = sweep(workdir, "study.max_trials=1")
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # as if not installed
    result = hposweep("dashboard", config)
    assert result.exit_code == 2
    assert "pip install 'hposweep[dashboard]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_study_yet_exits_2_and_says_so(workdir: Path) -> None:
    result = hposweep("dashboard", fake_config(workdir))
    assert result.exit_code == 2
    assert "no study to show yet" in result.stderr


@pytest.mark.parametrize("storage", ["journal:{dir}/study.log", *(
    pytest.param(name, marks=pytest.mark.services) for name in ("journal+redis", "postgresql",
                                                                "mysql"))])
def test_every_backbone_of_a_shared_storage_is_served_by_one_dashboard(
        workdir: Path, storage: str, request: pytest.FixtureRequest) -> None:
    if storage == "journal+redis":
        storage = "journal+" + request.getfixturevalue("redis_url")
    elif storage == "postgresql":
        db = request.getfixturevalue("postgres_db")
        storage = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
    elif storage == "mysql":
        storage = request.getfixturevalue("mysql_url")
    overrides = [f"study.storage={storage.format(dir=workdir)}", "study.max_trials=2",
                 f"study.name=d{uuid.uuid4().hex[:8]}_{{backbone}}", "backbones=[fake-a,fake-b]"]
    config = sweep(workdir, *overrides)
    with serving(config, *overrides) as servers:
        (server,) = servers
        assert [b for b, _ in server.studies] == ["fake-a", "fake-b"]
        for _, study_id in server.studies:
            detail = get(f"{server.url}/api/studies/{study_id}")
            assert detail["objective_names"] == ["score"]
            assert sum(t["state"] == "Complete" for t in detail["trials"]) == 2
            assert any(t["note"]["body"] for t in detail["trials"]), "the kept trial's"
            assert detail["plotly_graph_objects"], "each study its own figures"


# ------------------------------------------------------------ in a real browser


@pytest.fixture
def chromium() -> str:
    """Debian's headless Chromium (`.ci/run` installs it); its absence fails the test unless
    HPOSWEEP_TESTS_ALLOW_NO_SERVICES=1, like a missing server."""
    import os
    import shutil

    found = shutil.which("chromium")
    if found is None:
        message = "no `chromium` on PATH: apt-get install -y chromium (.ci/run does)"
        if os.environ.get("HPOSWEEP_TESTS_ALLOW_NO_SERVICES") == "1":
            pytest.skip(message)
        pytest.fail(message)
    return found


def browse(chromium: str, url: str, screenshot: Path | None = None) -> tuple[str, list[str]]:
    """The page's DOM once its scripts have run, and what it logged to its console."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
             "--virtual-time-budget=8000", "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True, text=True,
                         timeout=120)
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    if screenshot is not None:
        subprocess.run([chromium, *flags, f"--screenshot={screenshot}", url],
                       capture_output=True, timeout=120, check=True)
    return dom.stdout, console


def js_errors(console: list[str]) -> list[str]:
    return [line for line in console if "Uncaught" in line or "Error" in line]


@pytest.mark.services  # a real `mlflow server`, for the links
def test_the_dashboard_and_the_plot_page_render_in_chromium(
        workdir: Path, chromium: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.e2e.test_processes import MlflowServer

    server = MlflowServer(tmp_path / "mlflow")
    server.root.mkdir()
    server.start()
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        config = sweep(workdir)
    finally:
        server.stop()
    study = load_study(workdir / "outputs", "fake_fake")
    run_id = study.trials[0].user_attrs["hposweep.trial"]["mlflow_run_id"]
    link = f"{server.url}/#/experiments/1/runs/{run_id}?workflowType=machine_learning"
    with running_dashboard(workdir, config) as (proc, url):
        page, console = browse(chromium, url, screenshot=tmp_path / "dashboard.png")
        assert "fake_fake" in page and ">score<" in page, "the study and its metric's name"
        assert 'id="user-defined-plot:hposweep-fold-scores"' in page, "hposweep's figures"
        assert not js_errors(console), console
        assert (tmp_path / "dashboard.png").stat().st_size > 10_000
        trials, console = browse(chromium, url + "/trials")  # trial 0 is shown first
        assert link in trials, "trial 0's MLflow run (its user attributes): the training view"
        assert not js_errors(console), console
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)

    assert hposweep("plot", config, *SWEEP, "--out", workdir / "plots").exit_code == 0
    _, console = browse(chromium, (workdir / "plots" / "fake_fake.html").as_uri())
    assert not js_errors(console), console


def test_js_errors_are_seen_in_the_console_log(chromium: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>missing();</script></body></html>")
    _, console = browse(chromium, broken.as_uri())
    assert js_errors(console), "the check above could not fail"
