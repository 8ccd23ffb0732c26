"""hposweep dashboard, measured (nothing asserted):

1. start-up to the first page: `hposweep dashboard CONFIG` from the command to the study's
   page and its API answered, vs `optuna-dashboard STORAGE` (the plain tool) on the same
   study;
2. the study page's API (`GET /api/studies/<id>`, what the browser polls) on a study of
   1,000 finished trials with hposweep's attributes, SQLite and PostgreSQL: the first
   request and later ones (median of 5), before and after each trial gets its note;
3. what the notes cost a trial: ask, three user attributes, tell, with and without the
   trial's note (its id looked up, two writes), per trial, SQLite and PostgreSQL.

`--quick`: 100 trials, to check the script runs (its figures then mean nothing).
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import BIN, bench_env, quick_mode  # noqa: E402

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
POSTGRES_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
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
    study.set_metric_names(["score"])
    space = {"x": optuna.distributions.FloatDistribution(0, 1),
             "y": optuna.distributions.FloatDistribution(0, 1)}
    for number in range(n):
        x, y = (number % 97) / 97, (number % 89) / 89
        study.add_trial(optuna.trial.create_trial(
            params={"x": x, "y": y}, distributions=space, value=(x + y + x * y) / 3,
            user_attrs={"hposweep.trial": {"owner": {"host": "h", "pid": 1},
                                           "mlflow_run_id": uuid.uuid4().hex},
                        "fold_values": [x, y, x * y]}))


def add_notes(storage_url: str) -> None:
    """Each trial's note, as the sweep writes it."""
    import optuna

    from hposweep.study.notes import write_trial_note
    from hposweep.study.storage import make_storage

    storage = make_storage(storage_url)
    study = optuna.load_study(study_name="bench", storage=storage)
    study_id = storage.get_study_id_from_name("bench")
    for trial in study.get_trials(deepcopy=False):
        x, y = trial.params["x"], trial.params["y"]
        write_trial_note(storage, study_id,
                         storage.get_trial_id_from_study_id_trial_number(study_id, trial.number),
                         note(trial.number, trial.user_attrs["hposweep.trial"]["mlflow_run_id"],
                              x, y))


def note(number: int, run_id: str, x: float, y: float) -> str:
    return (f"**Trial {number}** (complete)\n\n- MLflow run: `{run_id}`\n"
            f"- fold scores: fold 1: {x:.4g}, fold 2: {y:.4g}, fold 3: {x * y:.4g}\n"
            "- checkpoint: not kept\n")


def per_trial_cost(storage_url: str, n: int) -> tuple[float, float]:
    """ms per trial of ask, three user attributes and tell, without and with the trial's
    note, in blocks of 25 trials alternating between two studies of one storage."""
    import optuna

    from hposweep.study.notes import write_trial_note
    from hposweep.study.storage import make_storage

    storage = make_storage(storage_url)
    spent = {False: 0.0, True: 0.0}
    studies = {notes: optuna.create_study(study_name=f"cost-{notes}", storage=storage,
                                          sampler=optuna.samplers.RandomSampler(0))
               for notes in (False, True)}
    for block in range(n // 25):
        for notes in ((False, True) if block % 2 == 0 else (True, False)):
            study = studies[notes]
            study_id = storage.get_study_id_from_name(study.study_name)
            started = time.perf_counter()
            for _ in range(25):
                trial = study.ask()
                x, y, run_id = trial.suggest_float("x", 0, 1), trial.suggest_float("y", 0, 1), "r"
                trial.set_user_attr("hposweep.trial", {"owner": {"host": "h"}, "mlflow_run_id": "r"})
                trial.set_user_attr("fold_values", [x, y])
                trial.set_user_attr("prune_reason", "")
                study.tell(trial, x + y)
                if notes:
                    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id,
                                                                              trial.number)
                    write_trial_note(storage, study_id, trial_id, note(trial.number, run_id, x, y))
            spent[notes] += time.perf_counter() - started
    blocks = (n // 25) * 25
    return spent[False] * 1000 / blocks, spent[True] * 1000 / blocks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
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


def start_up(argv: list[str], url_of: Any, cwd: Path) -> float:
    """Seconds from starting ``argv`` to the study page and its API answered."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=bench_env(), stdout=subprocess.PIPE,
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


def api_latency(storage_url: str) -> tuple[float, float]:
    """The first and the median of 5 later ``GET /api/studies/1`` (seconds), in process."""
    from hposweep.reports.dashboard import Server, start, stop
    from hposweep.study.storage import make_storage

    server = Server(storage_url, make_storage(storage_url, reading=True), [("fake", 1)])
    start([server], "127.0.0.1", 0)
    try:
        first = fetch(f"{server.url}/api/studies/1")
        later = statistics.median(fetch(f"{server.url}/api/studies/1") for _ in range(5))
    finally:
        stop([server])
    return first, later


def postgres_db() -> tuple[str, Any]:
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


def main() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    n = 100 if quick_mode(__doc__) else 1000
    n_cost = 50 if n == 100 else 200
    drops = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)

        def storage(kind: str, name: str) -> str:
            if kind == "sqlite":
                return f"sqlite:///{root / f'{name}.db'}"
            url, drop = postgres_db()
            drops.append(drop)
            return url

        try:
            for kind in ("sqlite", "postgresql"):
                without, with_note = per_trial_cost(storage(kind, "cost"), n_cost)
                say(f"per trial ({kind}, {n_cost} trials): ask + 3 attrs + tell "
                            f"{without:.2f} ms; with the note {with_note:.2f} ms: "
                            f"+{with_note - without:.2f} ms")
            studies = {}
            for kind in ("sqlite", "postgresql"):
                studies[kind] = storage(kind, kind)
                build_study(studies[kind], n)
                without = api_latency(studies[kind])
                add_notes(studies[kind])
                with_notes = api_latency(studies[kind])
                say(f"GET /api/studies/1, {n} trials ({kind}): without notes first "
                    f"{without[0]:.3f} s, later {without[1]:.3f} s; with the notes first "
                    f"{with_notes[0]:.3f} s, later {with_notes[1]:.3f} s")
            url = studies["sqlite"]
            config = root / "bench.yaml"
            config.write_text(CONFIG.format(n=n, storage=url))
            ours, plain = [], []
            for _ in range(3):
                ours.append(start_up([str(BIN / "hposweep"), "dashboard", str(config),
                                      "--port", "0"], hposweep_url, root))
                port = free_port()
                plain.append(start_up([str(BIN / "optuna-dashboard"), url, "--port", str(port)],
                                      lambda _proc, port=port: f"http://127.0.0.1:{port}", root))
            say(f"start-up to the first page ({n} trials, sqlite): hposweep dashboard "
                        f"{statistics.median(ours):.2f} s vs optuna-dashboard "
                        f"{statistics.median(plain):.2f} s (median of 3, alternating)")
        finally:
            for drop in drops:
                drop()


if __name__ == "__main__":
    main()
