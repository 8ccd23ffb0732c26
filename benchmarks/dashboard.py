"""hposweep dashboard, measured (nothing asserted); "before" is the form of the first landing
(a note on every finished trial), "after" this tree's (each trial's facts in its user
attributes, a note only on a trial that kept a checkpoint, hposweep's figures on the
study's page):

1. what the study's dashboard attributes cost a trial: ask, three user attributes, tell,
   then before: the trial's note (its id looked up, two writes); after: that note only
   when the trial beat the best (the sweep keeps its checkpoint). 200 trials in blocks of
   25 alternating between two studies of one storage, SQLite and PostgreSQL;
2. the study page's API (`GET /api/studies/<id>`, what the browser polls) on a study of
   1,000 finished trials with hposweep's attributes in each form, SQLite and PostgreSQL:
   the first request, then the median of 5 later ones, the two forms' servers asked in
   turn; and what the figures cost the sweep's end (built and written; again unchanged);
3. start-up to the first page: the command to the study's page and its API answered,
   `hposweep dashboard CONFIG` vs the plain `optuna-dashboard STORAGE` on the same study
   (and, with `--baseline-tree DIR`, the `hposweep dashboard` of another checkout, e.g.
   `git archive` of an older commit), median of 5, the sides' order rotating.

`--quick`: 100 trials, to check the script runs (its figures then mean nothing).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import BIN, REPO, bench_env  # noqa: E402

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
POSTGRES_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
FORMS = ("before", "after")
PAGE_FORMS = ("bare", *FORMS)  # bare: no note, no figure (the control)
PARTS = ("cost", "api", "startup")
CONFIG = """\
study: {{name: bench, objective_metric: score, max_trials: {n}, storage: "{storage}",
        sampler: {{name: random, seed: 0}}, pruner: {{name: none}}}}
search_space: {{x: {{type: float, low: 0.0, high: 1.0}}, y: {{type: float, low: 0.0, high: 1.0}}}}
backbones: [fake]
data: {{synthetic: {{sentences: 20, seed: 0}}}}
train: {{trainer: "fake_trainers:quadratic", epochs: 1}}
k_fold: {{enabled: true, n_splits: 3}}
"""


def build_study(storage_url: str, n: int) -> None:
    """A study of ``n`` finished trials with the attributes a sweep leaves (no notes)."""
    import optuna

    from hposweep.study.storage import make_storage

    study = optuna.create_study(study_name="bench", storage=make_storage(storage_url),
                                direction="maximize")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["score"])
    space = {"x": optuna.distributions.FloatDistribution(0, 1),
             "y": optuna.distributions.FloatDistribution(0, 1)}
    for number in range(n):
        x, y = (number % 97) / 97, (number % 89) / 89
        run_id = uuid.uuid4().hex
        study.add_trial(optuna.trial.create_trial(
            params={"x": x, "y": y}, distributions=space, value=(x + y + x * y) / 3,
            intermediate_values={0: x, 1: y, 2: x * y},
            user_attrs={"hposweep.trial": {"mlflow_run_url": f"http://mlflow:5000/#/experiments/1"
                                                             f"/runs/{run_id}",
                                           "mlflow_run_id": run_id,
                                           "owner": {"host": "h", "pid": 1}},
                        "fold_values": [x, y, x * y]}))


def improved(values: list[float]) -> list[bool]:
    """Which trial beat every one before it (the sweep keeps its checkpoint: a note)."""
    best, out = float("-inf"), []
    for value in values:
        out.append(value > best)
        best = max(best, value)
    return out


def add_dashboard_attrs(storage_url: str, form: str, cfg: Any) -> dict[str, float]:
    """The form's notes, as the sweep writes them; after: the figures too, and what they
    cost the sweep's end: seconds to build them (the first time in this process), to
    write them, to build and write them again unchanged; their JSON's characters and the
    writes (chunks)."""
    import optuna

    from hposweep.reports.plots import dashboard_figures
    from hposweep.study.notes import write_figures, write_trial_note
    from hposweep.study.storage import make_storage

    storage = make_storage(storage_url)
    study = optuna.load_study(study_name="bench", storage=storage)
    study_id = storage.get_study_id_from_name("bench")
    trials = study.get_trials(deepcopy=False)
    for trial, kept in zip(trials, improved([t.value for t in trials]), strict=True):
        if form == "before" or (form == "after" and kept):
            x, y = trial.params["x"], trial.params["y"]
            write_trial_note(storage, study_id,
                             storage.get_trial_id_from_study_id_trial_number(study_id, trial.number),
                             note(trial.number, trial.user_attrs["hposweep.trial"]["mlflow_run_id"],
                                  x, y, kept))
    if form != "after":
        return {}
    started = time.perf_counter()
    figures = dashboard_figures(study, cfg)
    built = time.perf_counter()
    writes = write_figures(storage, study_id, figures)
    written = time.perf_counter()
    write_figures(storage, study_id, dashboard_figures(study, cfg))
    return {"build": built - started, "write": written - built,
            "again": time.perf_counter() - written,
            "chars": sum(map(len, figures.values())), "writes": writes}


def note(number: int, run_id: str, x: float, y: float, kept: bool) -> str:
    return (f"**Trial {number}** (complete)\n\n- MLflow run: `{run_id}`\n"
            f"- fold scores: fold 1: {x:.4g}, fold 2: {y:.4g}, fold 3: {x * y:.4g}\n"
            + ("- checkpoint: kept (the best when it finished): `outputs/...`\n" if kept
               else "- checkpoint: not kept\n"))


def per_trial_cost(storage_url: str, n: int) -> dict[str, float]:
    """ms per trial of ask, three user attributes and tell, then each form's note, in
    blocks of 25 trials alternating between two studies of one storage."""
    import optuna

    from hposweep.study.notes import write_trial_note
    from hposweep.study.storage import make_storage

    storage = make_storage(storage_url)
    spent = dict.fromkeys(FORMS, 0.0)
    best = dict.fromkeys(FORMS, float("-inf"))
    studies = {form: optuna.create_study(study_name=f"cost-{form}", storage=storage,
                                         sampler=optuna.samplers.RandomSampler(0))
               for form in FORMS}
    for block in range(n // 25):
        for form in (FORMS if block % 2 == 0 else FORMS[::-1]):
            study = studies[form]
            study_id = storage.get_study_id_from_name(study.study_name)
            started = time.perf_counter()
            for _ in range(25):
                trial = study.ask()
                x, y = trial.suggest_float("x", 0, 1), trial.suggest_float("y", 0, 1)
                trial.set_user_attr("hposweep.trial", {"mlflow_run_id": "r", "owner": {"host": "h"}})
                trial.set_user_attr("fold_values", [x, y])
                trial.set_user_attr("prune_reason", "")
                study.tell(trial, x + y)
                kept = x + y > best[form]
                best[form] = max(best[form], x + y)
                if form == "before" or kept:
                    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id,
                                                                              trial.number)
                    write_trial_note(storage, study_id, trial_id,
                                     note(trial.number, "r", x, y, kept))
            spent[form] += time.perf_counter() - started
    blocks = (n // 25) * 25
    return {form: spent[form] * 1000 / blocks for form in FORMS}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=300) as response:
        response.read()
    return time.perf_counter() - started


def wait_for(url: str, proc: subprocess.Popen[str]) -> None:
    while proc.poll() is None:
        try:
            fetch(url)
            return
        except OSError:
            time.sleep(0.02)  # polling a server that is starting
    raise SystemExit(f"the server exited: {proc.communicate()[1][-2000:]}")


def start_up(argv: list[str], url_of: Callable[[subprocess.Popen[str]], str], cwd: Path,
             env: dict[str, str]) -> float:
    """Seconds from starting ``argv`` to the study page and its API answered."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        base = url_of(proc)
        wait_for(f"{base}/dashboard/studies/1", proc)
        fetch(f"{base}/api/studies/1")
        return time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait()


def hposweep_url(proc: subprocess.Popen[str]) -> str:
    line = proc.stdout.readline() if proc.stdout else ""
    if "http://" not in line:
        raise SystemExit(f"no URL printed: {line!r} {proc.communicate()}")
    return line.split(": ", 1)[1].split("/dashboard/")[0]


def api_latency(urls: dict[str, str], later: int = 7) -> dict[str, tuple[float, float]]:
    """Per form: the first and the median of ``later`` later ``GET /api/studies/1`` (s), in
    process, the forms' servers asked in turn."""
    from hposweep.reports.dashboard import Server, start, stop
    from hposweep.study.storage import make_storage

    servers = {form: Server(url, make_storage(url, reading=True), [("fake", 1)])
               for form, url in urls.items()}
    start(list(servers.values()), "127.0.0.1", 0)
    try:
        first = {form: fetch(f"{s.url}/api/studies/1") for form, s in servers.items()}
        times: dict[str, list[float]] = {form: [] for form in servers}
        for _ in range(later):
            for form, server in servers.items():
                times[form].append(fetch(f"{server.url}/api/studies/1"))
    finally:
        stop(list(servers.values()))
    return {form: (first[form], statistics.median(times[form])) for form in servers}


def postgres_db() -> tuple[str, Callable[[], None]]:
    import psycopg

    name = f"hposweep_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")

    def drop() -> None:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    return POSTGRES.format(db=name), drop


def say(row: str) -> None:
    print(row, flush=True)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, to check the script runs; the figures mean nothing")
    parser.add_argument("--baseline-tree", type=Path, metavar="DIR",
                        help="another checkout whose `hposweep dashboard` start-up is timed too")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"which parts to run, comma-separated (default: {','.join(PARTS)})")
    return parser.parse_args()


def measure_cost(storage: Callable[[str, str], str], n_cost: int) -> None:
    for kind in ("sqlite", "postgresql"):
        cost = per_trial_cost(storage(kind, "cost"), n_cost)
        say(f"per trial ({kind}, {n_cost} trials): ask + 3 attrs + tell + a note each: "
            f"before {cost['before']:.2f} ms; a note only on a new best: after "
            f"{cost['after']:.2f} ms ({cost['after'] - cost['before']:+.2f} ms)")


def build_forms(storage: Callable[[str, str], str], kind: str, n: int, root: Path,
                forms: tuple[str, ...], prefix: str) -> dict[str, str]:
    """A study of ``n`` trials per form; says what the figures cost the sweep's end."""
    from hposweep.config.loading import load

    urls = {form: storage(kind, f"{prefix}-{form}") for form in forms}
    config = root / f"{prefix}.yaml"
    config.write_text(CONFIG.format(n=n, storage=urls["after"]))
    cfg = load(config, [], check_files=False).config
    for form, url in urls.items():
        build_study(url, n)
        cost = add_dashboard_attrs(url, form, cfg)
        if cost:
            say(f"figures at the sweep's end ({n} trials, {kind}): built {cost['build']:.2f} s "
                f"(first in the process), {cost['chars'] / 1000:.0f} k characters written "
                f"in {cost['writes']:.0f} chunks {cost['write']:.2f} s; built again and "
                f"nothing written (unchanged) {cost['again']:.2f} s")
    return urls


def measure_start_up(url: str, n: int, root: Path, baseline: Path | None, repeats: int) -> None:
    config = root / "bench.yaml"
    config.write_text(CONFIG.format(n=n, storage=url))
    command = [sys.executable, "-m", "hposweep", "dashboard", str(config), "--port", "0"]
    trees = {"hposweep dashboard": REPO}
    if baseline:
        trees["baseline hposweep dashboard"] = baseline.resolve()
    sides: dict[str, tuple[list[str], Any, dict[str, str]]] = {
        side: (command, hposweep_url, {**bench_env(), "PYTHONPATH": os.pathsep.join(
            [str(tree), str(REPO / "tests")])}) for side, tree in trees.items()}
    times: dict[str, list[float]] = {side: [] for side in [*sides, "optuna-dashboard"]}
    for i in range(repeats):
        port = free_port()
        sides["optuna-dashboard"] = (
            [str(BIN / "optuna-dashboard"), url, "--port", str(port)],
            lambda _proc, port=port: f"http://127.0.0.1:{port}", bench_env())
        names = list(sides)
        for side in names[i % len(names):] + names[:i % len(names)]:
            argv, url_of, env = sides[side]
            times[side].append(start_up(argv, url_of, root, env))
    say(f"start-up to the first page ({n} trials, sqlite, median of {repeats}, order "
        "rotating): " + "; ".join(f"{side} {statistics.median(t):.2f} s"
                                  for side, t in times.items()))


def main() -> None:
    import optuna

    args = arguments()
    parts = set(args.parts.split(","))
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    n = 100 if args.quick else 1000
    drops: list[Callable[[], None]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)

        def storage(kind: str, name: str) -> str:
            if kind == "sqlite":
                return f"sqlite:///{root / f'{name}.db'}"
            url, drop = postgres_db()
            drops.append(drop)
            return url

        try:
            if "cost" in parts:
                measure_cost(storage, 50 if args.quick else 200)
            if "api" in parts:
                for kind in ("sqlite", "postgresql"):
                    latency = api_latency(build_forms(storage, kind, n, root, PAGE_FORMS, kind))
                    say(f"GET /api/studies/1, {n} trials ({kind}): " + "; ".join(
                        f"{form}: first {latency[form][0]:.3f} s, later {latency[form][1]:.3f} s"
                        for form in PAGE_FORMS))
            if "startup" in parts:
                url = build_forms(storage, "sqlite", n, root, ("after",), "startup")["after"]
                measure_start_up(url, n, root, args.baseline_tree, 2 if args.quick else 5)
        finally:
            for drop in drops:
                drop()


if __name__ == "__main__":
    main()
