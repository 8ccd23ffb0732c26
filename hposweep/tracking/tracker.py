"""MLflow tracking: a parent run per backbone, a child run per trial, fold runs under trials.

Tracking never takes a sweep down: the first MLflow error prints one warning and
turns tracking off for the rest of the sweep. HTTP retries are shortened (unless the
user set them) so that an unreachable server costs seconds, not minutes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hposweep import interrupts
from hposweep._testing.faults import kill_point
from hposweep.checkpoints.layout import METADATA_FILE, OutputLayout
from hposweep.config.schema import LOG_FRONT, SweepConfig
from hposweep.errors import first_line
from hposweep.objectives.spec import objectives_of, uses_front
from hposweep.results import FINAL_LOGGED_ATTR, BackboneResult
from hposweep.study.space import describe
from hposweep.study.storage import redact_url, storage_kind, storage_url
from hposweep.tracking.registry import Registered, register_checkpoint

ARTIFACT_PATH = "best_trial_checkpoint"
FINAL_ARTIFACT_PATH = "final_model"  # the final stage's model (final.refit), on the parent run
FINAL_RUN_NAME = "final"  # the final stage's run, a child of the parent run
FRONT_ARTIFACT_DIR = "pareto"  # mlflow.log_best_checkpoint: front -> pareto/trial_{n}/
FRONT_TABLE = "pareto_front"  # pareto_front.json and pareto_front.csv at the parent's root
SWEEP_ID_TAG = "hposweep.run_id"  # the parent run of the sweep with this id (the study's run_id)
DASHBOARD_TAG = "hposweep.dashboard"  # the parent run: the command that shows its study live
# The experiment's kind, for the MLflow versions that open it in their model-training view.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
# MLflow 3's UI opens a link in its "Model training" view (not GenAI) with this in the route.
TRAINING_VIEW = "workflowType=machine_learning"
RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED", "KILLED": "KILLED"}
# MLflow's client defaults (7 retries, backoff factor 2, 120 s timeout) stall for minutes.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    # Else every set_terminated over HTTP fetches the run again just to print its URL to
    # stdout: one more request per run, and noise in `--json` output.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # our console, not tqdm's
}


def tracking_uri(cfg: SweepConfig) -> str:
    """Config, then ``MLFLOW_TRACKING_URI``, then a SQLite store under ``output_dir``."""
    uri = cfg.mlflow.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    return uri or f"sqlite:///{OutputLayout.of(cfg.output_dir).mlflow_db.resolve()}"


def default_artifact_location(cfg: SweepConfig, uri: str) -> str | None:
    """Artifacts beside the default store (``output_dir/mlartifacts``); a server decides its own."""
    if cfg.mlflow.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"):
        return None
    return OutputLayout.of(cfg.output_dir).mlflow_artifacts.resolve().as_uri()


SQL_STORES = ("sqlite", "postgresql", "mysql", "mssql")  # MLflow's SQLAlchemy tracking store


def preload_mlflow(cfg: SweepConfig) -> None:
    """Import MLflow's client and, for a database URI, its SQL store: seconds of imports,
    done before the study lock, where the store is opened (``SweepTracker.start_sweep``):
    workers starting together would otherwise import one after another, and the first
    worker's trials would wait for them. A failing import is reported when connecting."""
    if not cfg.mlflow.enabled:
        return
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    with contextlib.suppress(Exception):
        import mlflow.tracking  # noqa: F401

        if tracking_uri(cfg).split(":", 1)[0].split("+", 1)[0] in SQL_STORES:
            import mlflow.store.tracking.sqlalchemy_store  # noqa: F401


def ui_link(uri: str, experiment_id: str, run_id: str | None = None) -> str | None:
    """The MLflow UI's page of a run (or of the experiment) when ``uri`` is an HTTP server,
    in its model-training view; None for a local store (it has no UI address)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return None
    host = parts.netloc.rsplit("@", 1)[-1]  # never its credentials
    server = urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))
    route = f"/experiments/{experiment_id}" + (f"/runs/{run_id}" if run_id else "")
    return f"{server}/#{route}?{TRAINING_VIEW}"


def mlflow_client(cfg: SweepConfig) -> Any:
    """The one place an ``MlflowClient`` is made: short HTTP retries (unless the user set
    them), our log levels, the store's directory created for a local SQLite URI."""
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    from mlflow import MlflowClient

    # After the import: importing mlflow sets its own logger to INFO.
    for name in ("alembic", "mlflow"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Its SQL store logs each OperationalError (a full disk, a locked database) with
    # SQLAlchemy's traceback before raising it, which our one warning reports; its
    # only other warnings are retries of creating the engine.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    uri = tracking_uri(cfg)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=uri)


class SweepTracker:
    """The MLflow side of one backbone's sweep. Every method is safe to call when off."""

    def __init__(self, cfg: SweepConfig, study_name: str, backbone: str,
                 warn: Callable[[str], None]) -> None:
        self.cfg = cfg
        self.study_name = study_name
        self.backbone = backbone
        self.warn = warn
        self.enabled = cfg.mlflow.enabled
        self.parent_run_id: str | None = None
        self._client: Any = None
        self._experiment_id: str | None = None
        self._finished = False  # the parent run of a finished study: left untouched
        self._ended_as: str | None = None  # how the parent run had ended, if this run reopened it
        self._trial_runs: dict[int, str] = {}  # this sweep's trial runs, by trial number
        self._params: dict[str, dict[str, Any]] = {}  # run id -> params, logged when it ends

    # ------------------------------------------------------------ safety net

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self.enabled:
            return None
        handled = sys.exc_info()[1]  # e.g. the interrupt whose clean-up ends the runs
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:
            interrupt = interrupts.behind(exc, handled)
            if interrupt is not None:  # Ctrl-C/SIGTERM landed inside MLflow: still ours
                interrupts.release_frames(exc)
                raise interrupt from None
            if not isinstance(exc, Exception):
                raise
            self.enabled = False
            self.warn(f"MLflow failed to {what} ({type(exc).__name__}: {first_line(exc)[:300]}); "
                      "tracking is off for the rest of this sweep, training goes on")
            return None

    def _connect(self) -> None:
        self._client = mlflow_client(self.cfg)
        uri = tracking_uri(self.cfg)
        name = self.cfg.mlflow.experiment
        experiment = self._client.get_experiment_by_name(name)
        if experiment is None:
            self._experiment_id = self._client.create_experiment(
                name, artifact_location=default_artifact_location(self.cfg, uri),
                tags=EXPERIMENT_KIND)
        else:
            self._experiment_id = experiment.experiment_id

    def run_link(self, run_id: str | None = None) -> str | None:
        """Where a run (by default the parent run) is shown: its MLflow UI page on an HTTP
        server, else its id."""
        run_id = run_id or self.parent_run_id
        if run_id is None or self._experiment_id is None:
            return run_id
        return ui_link(tracking_uri(self.cfg), self._experiment_id, run_id) or run_id

    # ------------------------------------------------------------ runs

    def start_sweep(self, sweep_id: str, stored_parent_id: str | None, config_yaml: str,
                    resumed: bool, nothing_to_run: bool = False, dashboard: str = "") -> str | None:
        """The sweep's one parent run: the study's stored one, else the one tagged with
        this sweep's id (a process killed between creating it and storing its id made
        it), else a new one. A finished study whose parent run is FINISHED is left
        exactly as it is: resuming it logs nothing twice."""
        self._call("connect", self._connect)
        if not self.enabled:
            return None
        self.parent_run_id = self._call(
            "start the parent run", self._start_parent, sweep_id, stored_parent_id, config_yaml,
            resumed, nothing_to_run, dashboard)
        return self.parent_run_id

    def _start_parent(self, sweep_id: str, stored_parent_id: str | None, config_yaml: str,
                      resumed: bool, nothing_to_run: bool, dashboard: str) -> str:
        client = self._client
        run = _existing_run(client, stored_parent_id) if stored_parent_id else None
        if stored_parent_id and run is None:
            self.warn(f"the study's MLflow parent run {stored_parent_id} no longer exists; "
                      "starting a new parent run")
        if run is None and not stored_parent_id:
            run = self._tagged_parent(sweep_id)
        if run is not None:
            run_id = run.info.run_id
            if nothing_to_run and run.info.status == "FINISHED":
                self._finished = True
                return run_id
            if run.info.status != "RUNNING":
                self._ended_as = run.info.status
                client.update_run(run_id, status="RUNNING")
            tags = {**({"hposweep.resumed": "true"} if resumed else {}),
                    **({DASHBOARD_TAG: dashboard} if run.data.tags.get(DASHBOARD_TAG) != dashboard
                       else {})}
            if tags:
                _log_batch(client, run_id, tags=tags)
            return run_id
        tags = {"hposweep.runType": "sweep", "hposweep.study_name": self.study_name,
                "hposweep.backbone": self.backbone, SWEEP_ID_TAG: sweep_id, DASHBOARD_TAG: dashboard}
        run_id = client.create_run(self._experiment_id, run_name=self.study_name,
                                   tags=tags).info.run_id
        kill_point("mlflow:parent-created")
        _log_batch(client, run_id, params=sweep_params(self.cfg, self.study_name, self.backbone,
                                                       resumed))
        client.log_text(run_id, config_yaml, "config.yaml")
        return run_id

    def _tagged_parent(self, sweep_id: str) -> Any:
        found = self._client.search_runs(
            [self._experiment_id], max_results=1,
            filter_string=f"tags.`{SWEEP_ID_TAG}` = '{sweep_id}' "
                          "and tags.`hposweep.runType` = 'sweep'")
        return found[0] if found else None

    def start_trial(self, number: int, params: Mapping[str, Any],
                    retried_from: int | None = None,
                    tags: Mapping[str, str] | None = None) -> str | None:
        """The trial's child run: found by its tags if it exists (never a duplicate);
        ``tags`` are added to a new run's."""
        if self.parent_run_id is None or self._finished:
            return None
        return self._call("start a trial run", self._start_trial, number, params, retried_from,
                          tags or {})

    def _start_trial(self, number: int, params: Mapping[str, Any],
                     retried_from: int | None, extra_tags: Mapping[str, str]) -> str:
        if number in self._trial_runs:  # found by its tags when the sweep started
            return self._trial_runs[number]
        tags = {**extra_tags, "mlflow.parentRunId": self.parent_run_id,
                "trial_number": str(number), "hposweep.study_name": self.study_name,
                "state": "RUNNING"}
        if retried_from is not None:
            tags["retried_from"] = str(retried_from)
        run = self._client.create_run(self._experiment_id, run_name=f"trial_{number}", tags=tags)
        self._params[run.info.run_id] = {**params, "trial_number": number}
        return run.info.run_id

    def reconcile_runs(self, trials: Mapping[int, tuple[str, Mapping[str, Any]]]) -> None:
        """Index the sweep's existing trial runs (a trial never gets a second run), and end
        the runs a dead process (or an MLflow outage) left RUNNING, by their trial's
        state in the study; runs of trials still RUNNING (live workers) are left alone."""
        if self.parent_run_id is None or self._finished:
            return
        self._call("read the existing runs", self._reconcile_runs, trials)

    def _reconcile_runs(self, trials: Mapping[int, tuple[str, Mapping[str, Any]]]) -> None:
        runs = self._client.search_runs(
            [self._experiment_id], max_results=50000,
            filter_string=f"tags.`hposweep.study_name` = '{self.study_name}'")
        self._trial_runs = {int(r.data.tags["trial_number"]): r.info.run_id for r in runs
                            if r.data.tags.get("mlflow.parentRunId") == self.parent_run_id
                            and "trial_number" in r.data.tags}
        for run in runs:
            if run.info.run_id == self.parent_run_id or run.info.status != "RUNNING":
                continue
            number = int(run.data.tags.get("trial_number", -1))
            state, params = trials.get(number, ("KILLED", {}))
            if "fold_idx" not in run.data.tags and not run.data.params:
                self._params[run.info.run_id] = {**params, "trial_number": number}
            if state in ("COMPLETE", "PRUNED"):
                self.end_run(run.info.run_id, state)  # finished while MLflow was away
            elif state != "RUNNING":
                self.end_run(run.info.run_id, "KILLED")  # its process died mid-trial

    def start_fold(self, trial_run_id: str | None, number: int, fold: int) -> str | None:
        if trial_run_id is None:
            return None
        tags = {"mlflow.parentRunId": trial_run_id, "trial_number": str(number),
                "fold_idx": str(fold), "hposweep.study_name": self.study_name}
        run = self._call("start a fold run", self._client.create_run, self._experiment_id,
                         run_name=f"trial_{number}_fold{fold}", tags=tags)
        if run is None:
            return None
        self._params[run.info.run_id] = {"fold_idx": fold}
        return run.info.run_id

    def log(self, run_id: str | None, metrics: Mapping[str, float] | None = None,
            params: Mapping[str, Any] | None = None, tags: Mapping[str, str] | None = None,
            step: int | None = None) -> None:
        if run_id is not None:
            self._call("log to a run", _log_batch, self._client, run_id, metrics, params, tags,
                       step)

    def end_run(self, run_id: str | None, state: str, reason: str | None = None,
                metrics: Mapping[str, float] | None = None) -> None:
        if run_id is None:
            return
        reason_key = "prune_reason" if state == "PRUNED" else "fail_reason"
        tags = {"state": state, **({reason_key: reason[:4000]} if reason else {})}
        # Params travel with the final batch: one request fewer per run (~17 ms over HTTP).
        self.log(run_id, metrics=metrics, params=self._params.pop(run_id, None), tags=tags)
        self._call("end a run", self._client.set_terminated, run_id, RUN_STATUS[state])

    def log_final(self, result: BackboneResult, study: Any) -> None:
        """Final metrics, tags and ``best_trial_checkpoint/``, once per state of the study
        (recorded in it): called under the study lock by the last active worker."""
        front = uses_front(self.cfg)
        logged: dict[str, Any] = {"finished": result.n_complete + result.n_pruned,
                                  "best": result.best_trial}
        if front:  # a new member can join without the knee changing
            logged["front"] = [m.number for m in result.front]
        if study.user_attrs.get(FINAL_LOGGED_ATTR) == logged:
            self.end_sweep_unchanged()  # another worker (or an earlier run) logged this
            return
        metric = self.cfg.study.objective_metric
        metrics: dict[str, float] = {"n_trials": result.n_trials,
                                     "n_completed_trials": result.n_complete}
        tags: dict[str, str] = {}
        if result.best_trial is not None:
            metrics[f"best_{metric}"] = float(result.best_value)  # type: ignore[arg-type]
            metrics.update({f"best_{k}": float(v) for k, v in result.best_params.items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)})
            tags = {"best_trial_number": str(result.best_trial),
                    "best_trial_run_id": result.mlflow_best_run_id or ""}
        self.log_plots(study, result.front)
        if front:
            self.log_front(result.front, objectives_of(self.cfg))
        if result.best_trial is None:
            self.end_run(self.parent_run_id, "FAIL",
                         "no feasible trial" if result.n_complete else "no trial completed",
                         metrics=metrics)
        else:
            checkpoint = Path(result.checkpoint) if result.checkpoint else None
            self.finish_sweep(metrics, tags, checkpoint, result.front)
        if self.enabled and self.parent_run_id is not None:
            study.set_user_attr(FINAL_LOGGED_ATTR, logged)

    def finish_sweep(self, metrics: Mapping[str, float], tags: Mapping[str, str],
                     checkpoint: Path | None, front: list[Any] | None = None) -> None:
        """Final metrics and tags, then ``best_trial_checkpoint/`` (once), then FINISHED.
        With ``mlflow.log_best_checkpoint: front``, every kept member of ``front`` goes
        under ``pareto/trial_{n}/`` instead."""
        run_id = self.parent_run_id
        if run_id is None or self._finished:
            return
        self.log(run_id, metrics=metrics, tags=tags)
        if self.cfg.mlflow.log_best_checkpoint == LOG_FRONT:
            for member in front or []:
                if member.checkpoint:
                    self._call(f"log {front_artifact(member.number)}/", self._log_checkpoint_once,
                               run_id, Path(member.checkpoint), front_artifact(member.number))
        elif self.cfg.mlflow.log_best_checkpoint:
            if checkpoint is None:
                self.warn("no checkpoint of the best trial is on disk; "
                          f"{ARTIFACT_PATH}/ is not logged")
            else:
                self._call(f"log {ARTIFACT_PATH}/", self._log_checkpoint_once, run_id, checkpoint)
        self._call("end the parent run", self._client.set_terminated, run_id, "FINISHED")

    def register_model(self, checkpoint: Path | None) -> Registered | None:
        """``mlflow.register_model``: ``checkpoint`` (the model the sweep ships) as a new
        version of the registered model, unless a version of it exists; None when off, or
        when MLflow failed (one warning)."""
        name = self.cfg.mlflow.register_model
        if name is None or self.parent_run_id is None:
            return None
        if checkpoint is None:
            self.warn(f"no checkpoint of the best trial is on disk; no version of {name!r} "
                      "is registered")
            return None
        return self._call(f"register a version of {name!r}", register_checkpoint, self._client,
                          tracking_uri(self.cfg), self.cfg, checkpoint,
                          study_name=self.study_name, parent_run_id=self.parent_run_id)

    def log_plots(self, study: Any, front: list[Any] | None = None) -> None:
        """The study's plots under ``plots/`` of the parent run (``mlflow.log_plots``)."""
        if self.parent_run_id is None or self._finished or not self.cfg.mlflow.log_plots:
            return
        self._call("log the plots", self._log_plots, study, front)

    def _log_plots(self, study: Any, front: list[Any] | None) -> None:
        import tempfile

        from hposweep.reports.plots import write_plots

        with tempfile.TemporaryDirectory() as tmp:
            if write_plots(study, self.cfg, Path(tmp), self.warn, front):
                self._client.log_artifacts(self.parent_run_id, tmp, "plots")

    def log_front(self, front: list[Any], objectives: list[Any]) -> None:
        """The front as ``pareto_front.json`` / ``.csv`` and the knee's objectives as
        ``knee_<metric>`` metrics of the parent run (the files are replaced each time)."""
        if self.parent_run_id is None or self._finished:
            return
        self._call("log the Pareto front", self._log_front, front, objectives)

    def _log_front(self, front: list[Any], objectives: list[Any]) -> None:
        import csv
        import io
        from dataclasses import asdict

        rows = [asdict(m) for m in front]
        self._client.log_text(self.parent_run_id, json.dumps(
            {"objectives": [asdict(o) for o in objectives], "front": rows}, indent=2,
            default=str), f"{FRONT_TABLE}.json")
        params = list(dict.fromkeys(k for m in front for k in m.params))
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["trial", *(o.metric for o in objectives), *params, "knee", "checkpoint"])
        for m in front:
            writer.writerow([m.number, *(m.values[o.metric] for o in objectives),
                             *(m.params.get(p, "") for p in params), m.knee,
                             m.checkpoint is not None])
        self._client.log_text(self.parent_run_id, buffer.getvalue(), f"{FRONT_TABLE}.csv")
        knee = next((m for m in front if m.knee), None)
        if knee is not None:
            _log_batch(self._client, self.parent_run_id,
                       metrics={f"knee_{k}": v for k, v in knee.values.items()})

    def _log_checkpoint_once(self, run_id: str, checkpoint: Path,
                             artifact_path: str = ARTIFACT_PATH) -> None:
        """Upload the best checkpoint so that ``best_trial_checkpoint/`` is always one whole
        checkpoint: files already there whole are not uploaded twice; an upload cut short
        is completed by the next run; a new best (a resumed sweep found a better trial)
        replaces every file. ``hposweep.json`` goes last: it marks the upload complete.
        (``log_artifacts`` merges into a folder and never deletes.)"""
        logged = {Path(a.path).name: a.file_size
                  for a in self._client.list_artifacts(run_id, artifact_path)}
        marker = checkpoint / METADATA_FILE
        # The same checkpoint: the same ``hposweep.json`` (a refit of the same trial is not).
        same_trial = (METADATA_FILE in logged and logged[METADATA_FILE] == marker.stat().st_size
                      and self._logged_metadata(run_id, artifact_path) == marker.read_bytes())
        files = sorted(p for p in checkpoint.iterdir() if p.is_file() and p != marker) + [marker]
        for path in files:
            if not same_trial or logged.get(path.name) != path.stat().st_size:
                self._client.log_artifact(run_id, str(path), artifact_path)
                kill_point("mlflow:artifact-file")
        stale = set(logged) - {p.name for p in files}
        if stale:
            self.warn(f"{artifact_path}/ still holds {sorted(stale)} from an earlier best trial "
                      "(MLflow cannot delete artifacts); the files of the best trial replaced "
                      "the rest")

    def _logged_metadata(self, run_id: str, artifact_path: str) -> bytes:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = self._client.download_artifacts(run_id, f"{artifact_path}/{METADATA_FILE}", tmp)
            return Path(path).read_bytes()

    # ------------------------------------------------------------ the final stage

    def attach(self, parent_run_id: str | None) -> None:
        """``hposweep refit``: log under the study's parent run as it is (never reopened)."""
        self._call("connect", self._connect)
        if self.enabled and parent_run_id is not None:
            self.parent_run_id = self._call("find the parent run", _existing_run, self._client,
                                            parent_run_id) and parent_run_id

    def start_final(self, params: Mapping[str, Any]) -> str | None:
        """The ``final`` run under the parent: the one a killed final stage left RUNNING
        (it continues), else a new one (a refit --force gets its own)."""
        if self.parent_run_id is None:
            return None
        return self._call("start the final run", self._start_final, params)

    def _start_final(self, params: Mapping[str, Any]) -> str:
        found = self._client.search_runs(
            [self._experiment_id], max_results=1,
            filter_string=f"tags.`mlflow.parentRunId` = '{self.parent_run_id}' and "
                          f"tags.`hposweep.runType` = '{FINAL_RUN_NAME}' and "
                          "attributes.status = 'RUNNING'")
        run_id = str(found[0].info.run_id) if found else str(self._client.create_run(
            self._experiment_id, run_name=FINAL_RUN_NAME, tags={
                "mlflow.parentRunId": self.parent_run_id, "hposweep.runType": FINAL_RUN_NAME,
                "hposweep.study_name": self.study_name, "state": "RUNNING"}).info.run_id)
        self._params[run_id] = dict(params)  # logged as it ends (a killed run logged none)
        return run_id

    def log_final_model(self, checkpoint: Path) -> None:
        """``final_model/`` on the parent run: one whole checkpoint, as the best's."""
        if self.parent_run_id is not None:
            self._call(f"log {FINAL_ARTIFACT_PATH}/", self._log_checkpoint_once,
                       self.parent_run_id, checkpoint, FINAL_ARTIFACT_PATH)

    def end_sweep_unchanged(self) -> None:
        """This run added nothing to log (e.g. a spent budget stopped it at once): the parent
        run ends FINISHED, or FAILED as before if the study still has no (feasible) trial."""
        if self.parent_run_id is not None and not self._finished:
            self._call("end the parent run", self._client.set_terminated, self.parent_run_id,
                       "FAILED" if self._ended_as == "FAILED" else "FINISHED")

    def abort_sweep(self) -> None:
        if self.parent_run_id is not None:
            self._call("end the parent run", self._client.set_terminated, self.parent_run_id,
                       "KILLED")


def sweep_params(cfg: SweepConfig, study_name: str, backbone: str, resumed: bool) -> dict[str, Any]:
    """The parent run's params: the search space and the sweep's settings (the keys keep
    the names users know from the original spec: ``checkpoint_enabled``, ...)."""
    url = storage_url(cfg, study_name)
    params: dict[str, Any] = {f"search_space.{name}": describe(spec)
                              for name, spec in cfg.search_space.items()}
    params.update(
        backbone=backbone, max_trials=cfg.study.max_trials, study_name=study_name,
        objective_metric=cfg.study.objective_metric,
        objective_goal=cfg.study.objective_goal,
        checkpoint_enabled=cfg.study.persist,
        checkpoint_path=redact_url(url),
        checkpoint_storage_type=storage_kind(url),
        resumed_from_checkpoint=resumed,
        k_fold=cfg.k_fold.n_splits if cfg.k_fold.enabled else "off",
        save_only_best=cfg.checkpoint.save_only_best,
    )
    return params


def front_artifact(number: int) -> str:
    """Where ``mlflow.log_best_checkpoint: front`` logs a member's checkpoint."""
    return f"{FRONT_ARTIFACT_DIR}/trial_{number}"




def _existing_run(client: Any, run_id: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        return None
    return None if run.info.lifecycle_stage == "deleted" else run


def _log_batch(client: Any, run_id: str, metrics: Mapping[str, float] | None = None,
               params: Mapping[str, Any] | None = None, tags: Mapping[str, str] | None = None,
               step: int | None = None) -> None:
    """One request for everything (one call per key costs ~1.7x on a local store)."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), now, step or 0) for k, v in (metrics or {}).items()],
        params=[Param(k, str(v)[:6000]) for k, v in (params or {}).items()],
        tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
    )
