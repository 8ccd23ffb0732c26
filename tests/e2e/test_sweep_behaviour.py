"""End to end through the CLI with instant trainers (``tests/fake_trainers.py``):
failure isolation, exit codes, flags on/off, resume, samplers and pruners, MLflow down."""

from __future__ import annotations

import socket
import time
import uuid
from hashlib import sha256
from pathlib import Path

import pytest

from tests.helpers import (
    FAKE_CONFIG,
    checkpoint_dirs,
    fake_config,
    hposweep,
    load_study,
    mlflow_client,
    runs_by_kind,
)


def run_fake(workdir: Path, *overrides: str, text: str = FAKE_CONFIG):
    return hposweep("run", fake_config(workdir, text), *overrides, "--json")


def test_failing_trials_do_not_stop_the_sweep(workdir: Path) -> None:
    result = run_fake(workdir, "train.trainer=fake_trainers:fails_when_x_high", "study.max_trials=8",
                      "study.max_failures=50")
    assert result.exit_code == 0
    summary = result.json()["backbones"][0]
    failed = [t for t in summary["trials"] if t["state"] == "FAIL"]
    assert failed and summary["n_complete"] == 8, "failed trials are replaced"
    assert all("simulated crash" in t["reason"] for t in failed)
    runs = {r.data.tags["trial_number"]: r for r in runs_by_kind(mlflow_client(), "fake")["trial"]}
    for t in failed:
        run = runs[str(t["number"])]
        assert run.info.status == "FAILED" and "simulated crash" in run.data.tags["fail_reason"]


@pytest.mark.parametrize(("trainer", "reason"), [
    ("returns_nan", "score is nan"),
    ("out_of_memory", "out of GPU memory at batch_size=16 on cpu"),
])
def test_nan_and_oom_fail_the_trial_with_a_reason(workdir: Path, trainer: str, reason: str) -> None:
    result = run_fake(workdir, f"train.trainer=fake_trainers:{trainer}", "study.max_trials=2")
    assert result.exit_code == 1, "no trial completed"
    trials = result.json()["backbones"][0]["trials"]
    assert [t["state"] for t in trials] == ["FAIL", "FAIL"]
    assert reason in trials[0]["reason"]


def test_no_completed_trial_exits_1_and_logs_no_checkpoint(workdir: Path) -> None:
    result = run_fake(workdir, "train.trainer=fake_trainers:always_fails", "study.max_trials=3")
    assert result.exit_code == 1
    summary = result.json()["backbones"][0]
    assert summary["n_complete"] == 0 and summary["best_trial"] is None
    assert checkpoint_dirs("outputs", "fake") == []
    client = mlflow_client()
    (parent,) = runs_by_kind(client, "fake")["parent"]
    assert parent.info.status == "FAILED"
    assert client.list_artifacts(parent.info.run_id, "best_trial_checkpoint") == []


def test_save_only_best_false_keeps_every_trials_every_fold(workdir: Path) -> None:
    result = run_fake(workdir, "checkpoint.save_only_best=false", "study.max_trials=3")
    assert result.exit_code == 0
    run_id = load_study("outputs", "fake_fake").user_attrs["hposweep.run_id"]
    assert checkpoint_dirs("outputs", "fake") == sorted(
        f"trial_{n}_{run_id}_fold{k}" for n in range(3) for k in range(2))


def test_save_only_best_keeps_one_dir(workdir: Path) -> None:
    result = run_fake(workdir, "study.max_trials=8")
    assert result.exit_code == 0
    best = result.json()["backbones"][0]["best_trial"]
    (kept,) = checkpoint_dirs("outputs", "fake")
    assert kept.startswith(f"trial_{best}_") and kept.endswith("_fold1")


def test_log_best_checkpoint_false_logs_no_artifact(workdir: Path) -> None:
    assert run_fake(workdir, "mlflow.log_best_checkpoint=false").exit_code == 0
    client = mlflow_client()
    (parent,) = runs_by_kind(client, "fake")["parent"]
    assert client.list_artifacts(parent.info.run_id, "best_trial_checkpoint") == []
    assert parent.data.tags["best_trial_number"]


def test_log_best_checkpoint_true_logs_the_kept_checkpoint(workdir: Path) -> None:
    assert run_fake(workdir).exit_code == 0
    client = mlflow_client()
    (parent,) = runs_by_kind(client, "fake")["parent"]
    names = [a.path for a in client.list_artifacts(parent.info.run_id, "best_trial_checkpoint")]
    assert names == ["best_trial_checkpoint/hposweep.json", "best_trial_checkpoint/weights.json"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Measured on 2 cores: 5-6 s with hposweep's HTTP settings; with MLflow's own (7 retries,
# backoff factor 2) the first request alone retries for about 4 minutes.
MLFLOW_DOWN_SECONDS = 30


def test_unreachable_mlflow_warns_once_and_the_sweep_finishes(
        workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)  # hposweep's defaults, not this shell's
    started = time.monotonic()
    result = run_fake(workdir, f"mlflow.tracking_uri=http://127.0.0.1:{free_port()}")
    elapsed = time.monotonic() - started
    assert result.exit_code == 0
    assert result.stderr.count("MLflow failed") == 1, result.stderr
    assert "Connection refused" in result.stderr or "ConnectionError" in result.stderr
    summary = result.json()["backbones"][0]
    assert summary["n_complete"] == 6 and summary["mlflow_parent_run_id"] is None
    assert checkpoint_dirs("outputs", "fake"), "checkpoints do not depend on MLflow"
    assert elapsed < MLFLOW_DOWN_SECONDS, f"{elapsed:.0f} s: MLflow's retries were not cut short"


def test_mlflow_store_that_errors_warns_once_and_the_sweep_finishes(workdir: Path) -> None:
    broken = workdir / "broken.db"
    broken.write_bytes(b"not a database" * 100)
    result = run_fake(workdir, f"mlflow.tracking_uri=sqlite:///{broken}")
    assert result.exit_code == 0
    assert result.stderr.count("MLflow failed") == 1, result.stderr
    assert result.json()["backbones"][0]["n_complete"] == 6


def test_no_persistence_keeps_the_study_in_memory(workdir: Path) -> None:
    result = run_fake(workdir, "study.persist=false", "study.max_trials=3")
    assert result.exit_code == 0
    summary = result.json()["backbones"][0]
    assert summary["storage"] == "memory" and summary["n_complete"] == 3
    assert not (workdir / "outputs" / "hpo" / "fake_fake").exists()
    assert len(checkpoint_dirs("outputs", "fake")) == 1, "model checkpoints are still kept"
    again = run_fake(workdir, "study.persist=false", "study.max_trials=3")
    assert again.json()["backbones"][0]["resumed"] is False


def test_mlflow_disabled(workdir: Path) -> None:
    result = run_fake(workdir, "mlflow.enabled=false")
    assert result.exit_code == 0 and result.json()["backbones"][0]["mlflow_parent_run_id"] is None
    assert mlflow_client().get_experiment_by_name("fake") is None, "nothing was tracked"


@pytest.mark.parametrize("sampler", ["tpe", "random", "grid", "cmaes", "gp", "nsga2"])
def test_every_sampler_with_max_trials_above_what_it_can_draw(workdir: Path, sampler: str) -> None:
    """x has 5 values on its grid and max_trials is 7: the grid ends the study at its 5
    points (each once, exit 0, the final logging done); the other samplers may draw a
    value again and run all 7. (Which class each name gives: tests/unit/test_study.py.)"""
    tracked = [] if sampler == "grid" else ["mlflow.enabled=false"]
    result = run_fake(workdir, f"study.sampler.name={sampler}", "search_space.x.step=0.25",
                      "study.max_trials=7", *tracked)
    assert result.exit_code == 0, result.stderr
    summary = result.json()["backbones"][0]
    xs = sorted(t["params"]["x"] for t in summary["trials"])
    if sampler != "grid":
        assert (summary["n_complete"], summary["stopped"]) == (7, "max_trials")
        return
    assert xs == [0.0, 0.25, 0.5, 0.75, 1.0], "each point once, no surplus trial"
    assert (summary["stopped"], summary["stop_message"]) == (
        "grid_exhausted", "the grid is exhausted (5 points)")
    client = mlflow_client()
    (parent,) = runs_by_kind(client, "fake")["parent"]
    assert parent.info.status == "FINISHED" and parent.data.metrics["n_completed_trials"] == 5
    assert parent.data.tags["best_trial_number"] == str(summary["best_trial"])
    assert client.list_artifacts(parent.info.run_id, "best_trial_checkpoint")
    grid = ("study.sampler.name=grid", "search_space.x.step=0.25", "study.max_trials=9")
    config = fake_config(workdir)
    (status,) = hposweep("status", config, *grid, "--json").json()
    assert status["stopped"] == "the grid is exhausted (5 points)", "status knows it is done"
    dry_run = hposweep("run", config, *grid, "--dry-run")
    assert "fake: would start no trial of study 'fake_fake': the grid is exhausted (5 points)" \
        in dry_run.stdout
    again = run_fake(workdir, *grid)
    assert again.exit_code == 0, again.stderr
    assert again.json()["backbones"][0]["n_trials"] == 5, "a resume adds no trial"


def test_a_grid_runs_each_point_once_in_one_order_per_study_across_resumes(
        workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    grid = ["study.sampler.name=grid", "search_space.x.step=0.2", "mlflow.enabled=false"]
    first = run_fake(workdir, *grid, "study.max_trials=4")
    resumed = run_fake(workdir, *grid, "study.max_trials=10")
    assert first.exit_code == resumed.exit_code == 0, first.stderr + resumed.stderr
    xs = [t["params"]["x"] for t in resumed.json()["backbones"][0]["trials"]]
    assert sorted(xs) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], xs
    other = tmp_path_factory.mktemp("again")
    at_once = hposweep("run", fake_config(other), *grid, "study.max_trials=10",
                       f"output_dir={other / 'outputs'}", "--json")
    assert [t["params"]["x"] for t in at_once.json()["backbones"][0]["trials"]] == xs


def test_two_studies_with_one_seed_draw_different_parameters(workdir: Path) -> None:
    result = run_fake(workdir, "backbones=[fake, other]", "mlflow.enabled=false",
                      "study.sampler.name=random")
    assert result.exit_code == 0, result.stderr
    fake, other = ({t["params"]["x"] for t in b["trials"]} for b in result.json()["backbones"])
    assert len(fake) == len(other) == 6 and not fake & other


def test_a_resumed_study_draws_what_an_uninterrupted_one_draws(
        workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A study's stream is the same on every resume: the seed does not depend on the process."""
    assert run_fake(workdir, "study.max_trials=2", "mlflow.enabled=false").exit_code == 0
    resumed = run_fake(workdir, "mlflow.enabled=false")
    other = tmp_path_factory.mktemp("again")
    at_once = hposweep("run", fake_config(other), "mlflow.enabled=false",
                       f"output_dir={other / 'outputs'}", "--json")
    xs = [[t["params"]["x"] for t in r.json()["backbones"][0]["trials"]] for r in (resumed, at_once)]
    assert xs[0] == xs[1] and len(set(xs[0])) == 6


@pytest.mark.parametrize(("pruner", "settings", "steps"), [
    # Nothing is pruned before step n_warmup_steps; a trial below the median stops there.
    ("median", ["study.pruner.n_startup_trials=1", "study.pruner.n_warmup_steps=2"], {2}),
    # Rungs at min_resource * reduction_factor**k: in 4 steps, one rung, at step 3.
    ("successive_halving", ["study.pruner.min_resource=3"], {3}),
    # max_resource 4 (train.epochs): two brackets, with rungs at steps 1 and 3, and at 3.
    ("hyperband", ["study.pruner.min_resource=1"], {1, 3}),
    ("none", [], set()),
])
def test_each_pruner_stops_poor_trials_at_its_own_steps(
        workdir: Path, pruner: str, settings: list[str], steps: set[int]) -> None:
    """The stepwise trainer reports one score, a known function of x, at steps 0 to 3, and
    the seeded random sampler's x are fixed (checked: each pruner prunes 4 or 5 of the 10
    trials), so where the pruned trials stopped shows the pruner's settings at work. (Which
    class each name gives: tests/unit/test_study.py.)"""
    result = run_fake(workdir, f"study.pruner.name={pruner}", *settings, "train.epochs=4",
                      "train.trainer=fake_trainers:stepwise", "k_fold.enabled=false",
                      "study.max_trials=10", "mlflow.enabled=false")
    assert result.exit_code == 0, result.stderr
    trials = load_study("outputs", "fake_fake").trials
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert {max(t.intermediate_values) for t in pruned} == steps
    assert result.json()["backbones"][0]["n_pruned"] == len(pruned)
    for trial in pruned:
        score = trial.intermediate_values[0]
        assert any(score < t.intermediate_values[0] for t in trials[:trial.number]), \
            f"trial {trial.number} was pruned, yet no trial before it scored better"


@pytest.mark.parametrize(("pruner", "prunes"), [("median", True), ("none", False)])
def test_the_pruner_stops_poor_trials_early(workdir: Path, pruner: str, prunes: bool) -> None:
    result = run_fake(workdir, f"study.pruner.name={pruner}", "study.pruner.n_startup_trials=1",
                      "train.trainer=fake_trainers:stepwise", "k_fold.enabled=false",
                      "study.max_trials=8")
    assert result.exit_code == 0, result.stderr
    study = load_study("outputs", "fake_fake")
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert bool(pruned) is prunes
    assert result.json()["backbones"][0]["n_pruned"] == len(pruned)
    runs = {int(r.data.tags["trial_number"]): r for r in runs_by_kind(mlflow_client(), "fake")["trial"]}
    for trial in pruned:
        assert trial.user_attrs["prune_reason"].startswith("pruned at step")
        assert max(trial.intermediate_values) < 3, "stopped before its last step"
        assert runs[trial.number].data.tags["state"] == "PRUNED"


def test_seeded_sampler_gives_the_same_params(workdir: Path, tmp_path: Path) -> None:
    first = run_fake(workdir, "mlflow.enabled=false", "study.sampler.name=tpe")
    second = hposweep("run", fake_config(workdir), "mlflow.enabled=false", "study.sampler.name=tpe",
                      "output_dir=again", "--json")
    params = [[t["params"] for t in r.json()["backbones"][0]["trials"]] for r in (first, second)]
    assert params[0] == params[1]


def test_timeout_stops_the_study_early(workdir: Path) -> None:
    result = run_fake(workdir, "study.timeout_minutes=0.0001", "study.max_trials=50",
                      "mlflow.enabled=false")
    assert result.exit_code == 0
    assert 1 <= result.json()["backbones"][0]["n_trials"] < 50


def test_resume_reaches_max_trials_with_one_parent_and_one_run_id(workdir: Path) -> None:
    assert run_fake(workdir, "study.max_trials=3").exit_code == 0
    run_id = load_study("outputs", "fake_fake").user_attrs["hposweep.run_id"]
    again = run_fake(workdir, "study.max_trials=6")
    assert again.exit_code == 0
    summary = again.json()["backbones"][0]
    assert summary["resumed"] is True and summary["n_trials"] == 6
    study = load_study("outputs", "fake_fake")
    assert study.user_attrs["hposweep.run_id"] == run_id
    assert sorted(t.number for t in study.trials) == list(range(6))
    runs = runs_by_kind(mlflow_client(), "fake")
    (parent,) = runs["parent"]
    assert parent.data.tags["hposweep.resumed"] == "true" and len(runs["trial"]) == 6
    (kept,) = checkpoint_dirs("outputs", "fake")
    assert f"_{run_id}_" in kept


def test_a_finished_study_runs_nothing_more(workdir: Path) -> None:
    assert run_fake(workdir, "study.max_trials=2").exit_code == 0
    again = run_fake(workdir, "study.max_trials=2")
    assert again.exit_code == 0 and again.json()["backbones"][0]["n_trials"] == 2
    client = mlflow_client()
    (parent,) = runs_by_kind(client, "fake")["parent"]
    assert len(client.list_artifacts(parent.info.run_id, "best_trial_checkpoint")) == 2


def test_existing_study_without_resume_is_exit_2_then_fresh_archives(workdir: Path) -> None:
    assert run_fake(workdir, "study.max_trials=2").exit_code == 0
    refused = run_fake(workdir, "study.resume=false")
    assert refused.exit_code == 2
    assert "--fresh" in refused.stderr and "study.resume" in refused.stderr
    fresh = hposweep("run", workdir / "fake.yaml", "study.max_trials=2", "--fresh", "--json")
    assert fresh.exit_code == 0 and fresh.json()["backbones"][0]["resumed"] is False
    archived = list((workdir / "outputs" / "hpo").glob("fake_fake.archived-*"))
    assert len(archived) == 1 and (archived[0] / "study.db").is_file()


def test_corrupt_study_db_is_exit_2_and_left_untouched(workdir: Path) -> None:
    db = workdir / "outputs" / "hpo" / "fake_fake" / "study.db"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not sqlite" * 10)
    result = run_fake(workdir)
    assert result.exit_code == 2 and "corrupt" in result.stderr
    assert db.read_bytes() == b"this is not sqlite" * 10


@pytest.mark.parametrize("override", ["study.n_trails=3", "search_space.x.low=5",
                                      "train.trainer=no_such_module:train"])
def test_bad_input_is_exit_2_one_line_nothing_written(workdir: Path, override: str) -> None:
    before = sorted(p.name for p in (workdir / "outputs").iterdir())
    result = run_fake(workdir, override)
    assert result.exit_code == 2
    assert result.stderr.startswith("error:") and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert sorted(p.name for p in (workdir / "outputs").iterdir()) == before


def test_validate_prints_the_merged_config_or_the_error(workdir: Path) -> None:
    config = fake_config(workdir)
    ok = hposweep("validate", config, "study.max_trials=9")
    assert ok.exit_code == 0 and "max_trials: 9" in ok.stdout
    bad = hposweep("validate", config, "k_fold.n_splits=1")
    assert bad.exit_code == 2 and "k_fold.n_splits" in bad.stderr


def test_a_deleted_parent_run_is_replaced_and_recorded(workdir: Path) -> None:
    assert run_fake(workdir, "study.max_trials=2").exit_code == 0
    client = mlflow_client()
    (old,) = runs_by_kind(client, "fake")["parent"]
    client.delete_run(old.info.run_id)
    again = run_fake(workdir, "study.max_trials=3")
    assert again.exit_code == 0 and "no longer exists" in again.stderr
    new_id = again.json()["backbones"][0]["mlflow_parent_run_id"]
    assert new_id != old.info.run_id
    assert load_study("outputs", "fake_fake").user_attrs["hposweep.mlflow_parent_run_id"] == new_id


def test_status_reads_without_writing(workdir: Path) -> None:
    config = fake_config(workdir)
    empty = hposweep("status", config, "--json")
    assert empty.exit_code == 0 and empty.json()[0]["exists"] is False
    assert not (workdir / "outputs" / "hpo").exists(), "status created nothing"
    assert run_fake(workdir, "study.max_trials=2").exit_code == 0
    study_db = workdir / "outputs" / "hpo" / "fake_fake" / "study.db"
    digest, files = sha256(study_db.read_bytes()).hexdigest(), files_under(workdir / "outputs")
    (status,) = hposweep("status", config, "--json").json()
    assert status["finished"] == 2 and status["remaining"] == 4 and status["pending"] == []
    assert [t["state"] for t in status["trials"]] == ["COMPLETE", "COMPLETE"]
    text = hposweep("status", config)
    assert "finished: 2/6" in text.stdout and "resume pending: nothing" in text.stdout
    for command in ("best", "compare"):
        assert hposweep(command, config).exit_code == 0, command
    assert sha256(study_db.read_bytes()).hexdigest() == digest, "a reading command changed study.db"
    assert files_under(workdir / "outputs") == files, "a reading command wrote under output_dir"


def test_trust_remote_code_is_never_a_search_parameter(workdir: Path) -> None:
    text = FAKE_CONFIG.replace("  x: {type: float, low: 0.0, high: 1.0}",
                               "  x: {type: float, low: 0.0, high: 1.0}\n"
                               "  trust_remote_code: {type: categorical, choices: [true, false]}")
    result = hposweep("run", fake_config(workdir, text))
    assert result.exit_code == 2 and "security setting" in result.stderr


def test_a_new_best_after_resume_replaces_the_whole_logged_checkpoint(workdir: Path) -> None:
    """The first sweep logs trial A; resumed with more trials, trial B wins: every file of
    best_trial_checkpoint/ must then be B's (the weights have the same size as A's)."""
    assert run_fake(workdir, "study.max_trials=1", "study.enqueue=[{x: 0.95}]").exit_code == 0
    again = run_fake(workdir, "study.max_trials=12")
    assert again.exit_code == 0
    summary = again.json()["backbones"][0]
    assert summary["best_trial"] != 0, "the sampler finds a better trial than x=0.95"
    client = mlflow_client()
    (parent,) = runs_by_kind(client, "fake")["parent"]
    downloaded = Path(client.download_artifacts(parent.info.run_id, "best_trial_checkpoint",
                                                str(workdir / "dl")))
    local = Path(summary["checkpoint"])
    for name in ("weights.json", "hposweep.json"):
        assert (downloaded / name).read_text() == (local / name).read_text(), name


@pytest.mark.parametrize("storage", ["journal:{dir}/study.log", "journal+redis://127.0.0.1:6379/0"])
def test_journal_storages_run_and_resume(workdir: Path, storage: str,
                                         request: pytest.FixtureRequest) -> None:
    if storage.startswith("journal+redis"):
        request.getfixturevalue("redis_url")  # fails loudly when Redis does not answer
    # A study name of its own: one Redis database serves every test run.
    overrides = [f"study.storage={storage.format(dir=workdir)}",
                 f"study.name=j{uuid.uuid4().hex[:8]}_{{backbone}}"]
    first = run_fake(workdir, *overrides, "study.max_trials=3")
    assert first.exit_code == 0, first.stderr
    assert first.json()["backbones"][0]["storage"] in ("journal", "journal-redis")
    again = run_fake(workdir, *overrides, "study.max_trials=5").json()["backbones"][0]
    assert again["resumed"] is True and again["n_trials"] == 5


def test_a_mysql_study_storage(workdir: Path, mysql_url: str) -> None:
    overrides = [f"study.storage={mysql_url}",
                 f"study.name=m{uuid.uuid4().hex[:8]}_{{backbone}}", "study.max_trials=3"]
    result = run_fake(workdir, *overrides)
    assert result.exit_code == 0, result.stderr
    summary = result.json()["backbones"][0]
    assert summary["storage"] == "mysql" and summary["n_complete"] == 3


def test_a_resumed_study_samples_new_hyperparameters(workdir: Path) -> None:
    """The seed moves on with the study: resuming must not replay the first trials."""
    assert run_fake(workdir, "study.max_trials=4", "study.sampler.name=tpe").exit_code == 0
    again = run_fake(workdir, "study.max_trials=8", "study.sampler.name=tpe")
    xs = [t["params"]["x"] for t in again.json()["backbones"][0]["trials"]]
    assert len(set(xs)) == 8, xs


def test_resuming_with_a_different_objective_is_refused(workdir: Path) -> None:
    assert run_fake(workdir, "study.max_trials=2", "k_fold.enabled=false").exit_code == 0
    mixed = run_fake(workdir, "study.max_trials=4", "k_fold.enabled=true")
    assert mixed.exit_code == 2
    assert "made with k_fold.enabled=false, this config has k_fold.n_splits=" in mixed.stderr
    assert "--fresh" in mixed.stderr
    assert len(load_study("outputs", "fake_fake").trials) == 2
    widened = run_fake(workdir, "study.max_trials=3", "k_fold.enabled=false",
                       "search_space.x.high=2.0", "study.sampler.name=random")
    assert widened.exit_code == 0, "search space and sampler may change on resume"


def files_under(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and dir under ``root``, with its size and modification time (ns)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*")}


def tables_of(database: str) -> dict[str, tuple[int, str]]:
    """Each table of a local PostgreSQL database, with its row count and an MD5 of its rows."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={database}") as connection:
        names = [row[0] for row in connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
        query = sql.SQL("SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text),"
                        " '')) FROM {} AS t")
        return {name: connection.execute(query.format(sql.Identifier(name))).fetchone()
                for name in names}


def postgresql_storage(database: str) -> str:
    return f"study.storage=postgresql+psycopg://postgres@127.0.0.1:5432/{database}"


def test_status_on_an_empty_postgresql_database_creates_no_table(
        workdir: Path, postgres_db: str) -> None:
    """Looking is not writing: creating Optuna's schema is a write, and needs rights on the
    database that a reader may not have."""
    files = files_under(workdir / "outputs")
    result = hposweep("status", fake_config(workdir), postgresql_storage(postgres_db), "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()[0]["exists"] is False
    assert tables_of(postgres_db) == {}, "status created tables"
    assert files_under(workdir / "outputs") == files, "status wrote under output_dir"


# The commands that only read a study; they run in the workdir, so their outputs land there.
READERS = [["status", "--json"], ["status"], ["best", "--json"], ["compare", "--json"],
           ["export", "--to", "exported"], ["plot", "--out", "plots"]]


def test_reading_commands_change_nothing_in_a_postgresql_study(
        workdir: Path, postgres_db: str) -> None:
    config, storage = fake_config(workdir), postgresql_storage(postgres_db)
    assert run_fake(workdir, storage, "study.max_trials=2", "mlflow.enabled=false").exit_code == 0
    rows, files = tables_of(postgres_db), files_under(workdir / "outputs")
    (status,) = hposweep("status", config, storage, "--json").json()
    assert status["finished"] == 2 and [t["state"] for t in status["trials"]] == ["COMPLETE"] * 2
    for command, *options in READERS:
        result = hposweep(command, config, storage, *options)
        assert result.exit_code == 0, f"{command}: {result.stderr}"
        assert tables_of(postgres_db) == rows, f"{command} changed the study's tables"
        assert files_under(workdir / "outputs") == files, f"{command} wrote under output_dir"
    assert (workdir / "exported" / "MANIFEST.sha256").is_file() and (
        workdir / "plots" / "fake_fake.html").is_file(), "export and plot read the study"


CONLL = "".join(f"Alice\tB-PER\nvisited\tO\nParis\tB-LOC\n{n}\tO\n\n" for n in range(6))


def test_reading_commands_do_not_need_the_training_data(workdir: Path) -> None:
    """A study is read from its storage and output_dir alone: the data it was trained on
    may be gone (or on another machine)."""
    data = workdir / "train.conll"
    data.write_text(CONLL)
    overrides = ["data.synthetic=null", f"data.train={data}"]
    assert run_fake(workdir, *overrides, "study.max_trials=2").exit_code == 0
    data.unlink()
    for command in ("status", "best", "compare"):
        result = hposweep(command, workdir / "fake.yaml", *overrides, "--json")
        assert result.exit_code == 0, f"{command}: {result.stderr}"
        assert result.json()[0]["finished"] == 2, command


def test_a_pruned_trials_reason_names_its_fold_and_epoch(workdir: Path) -> None:
    """A custom trainer prunes with its own words; the reason the study keeps (and the
    tables, the log and MLflow show) adds where, as the live view says it."""
    result = hposweep("run", fake_config(workdir), "train.trainer=fake_trainers:learning_curve",
                      "train.epochs=3", "study.pruner.name=median",
                      "study.pruner.n_startup_trials=1", "study.pruner.n_warmup_steps=0",
                      "study.max_trials=8", "mlflow.enabled=false")
    assert result.exit_code == 0, result.stderr
    pruned = [t for t in load_study("outputs", "fake_fake").trials if t.state.name == "PRUNED"]
    assert pruned, "the test needs a pruned trial"
    for trial in pruned:
        step = max(trial.intermediate_values)  # fold index * epochs + epoch
        where = f"fold {step // 3 + 1}/2 epoch {step % 3 + 1}"
        reason = trial.user_attrs["prune_reason"]
        estimate = f"running estimate of score {trial.intermediate_values[step]:.4f}"
        assert reason.startswith(f"pruned at epoch {step % 3}: score=") and \
            reason.endswith(f" ({where}; {estimate})"), reason
        assert f"trial {trial.number} PRUNED {trial.intermediate_values[step]:.4f}: {reason}" \
            in result.stdout
