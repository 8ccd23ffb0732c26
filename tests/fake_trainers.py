"""Trainers for tests that need a trial outcome on demand (no model, instant).

They follow the same contract as the built-in trainer: ``(params, data, ctx) -> metrics``.
"""

from __future__ import annotations

import json

HOLDING = "test trainer: holding"


def wait_if_told() -> None:
    """Timing a test controls without changing the config (a resumed study must keep its
    trainer): HPOSWEEP_TEST_HOLD=1 makes the trial run until the process is stopped
    (at most 120 s); HPOSWEEP_TEST_GATE=<file> makes it wait until that file exists, then
    remove it: each file the test creates lets exactly one trial through;
    HPOSWEEP_TEST_DOOR=<file> makes it wait until that file exists, and lets every trial
    through from then on."""
    import os
    import time
    from pathlib import Path

    hold = os.environ.get("HPOSWEEP_TEST_HOLD") == "1"
    gate = os.environ.get("HPOSWEEP_TEST_GATE")
    door = os.environ.get("HPOSWEEP_TEST_DOOR")
    deadline = time.monotonic() + 120
    if hold:  # a line to sync on: a signal sent from now on lands in this loop, not in a write
        print(HOLDING, flush=True)
    while time.monotonic() < deadline and (hold or any(
            path and not Path(path).exists() for path in (gate, door))):
        time.sleep(0.02)
    if gate:
        Path(gate).unlink(missing_ok=True)


def quadratic(params, data, ctx):
    """score peaks at x = 0.3; saves a small 'checkpoint' when asked to."""
    wait_if_told()
    score = 1.0 - (params["x"] - 0.3) ** 2
    ctx.report(score, 0)
    if ctx.checkpoint_dir is not None:
        ctx.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        (ctx.checkpoint_dir / "weights.json").write_text(json.dumps({"x": params["x"]}))
    return {"score": score, "n_train": float(len(data.train))}


TEST_WORD = "TESTONLY"  # in every sentence of the test files of tests/e2e/test_final_isolation.py
FINAL_CALLS: list[dict] = []  # what the final stage gave ``no_test_data`` (in-process runs)


def no_test_data(params, data, ctx):
    """``quadratic``, failing a trial whose data holds a test sentence; the final stage's
    call is recorded in ``FINAL_CALLS``."""
    tested = [e for e in data.train + data.validation if TEST_WORD in e.tokens]
    if tested and not ctx.final:
        raise RuntimeError(f"trial {ctx.trial_number} was given {len(tested)} test sentences")
    if ctx.final:
        FINAL_CALLS.append({"train": len(data.train), "test": len(tested), "fold": ctx.fold,
                            "validation": len(data.validation), "epochs": params["epochs"]})
    return quadratic(params, data, ctx)


def fails_in_final_stage(params, data, ctx):
    if ctx.final:
        raise RuntimeError("no final model today")
    return quadratic(params, data, ctx)


def fails_when_x_high(params, data, ctx):
    if params["x"] > 0.5:
        raise RuntimeError(f"simulated crash at x={params['x']:.2f}")
    return quadratic(params, data, ctx)


def always_fails(params, data, ctx):
    raise RuntimeError("this trainer always fails")


def returns_nan(params, data, ctx):
    return {"score": float("nan")}


def out_of_memory(params, data, ctx):
    import torch

    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def wrong_arity(params):
    return {"score": 1.0}


def declared_float(params, data, ctx) -> float:
    return 1.0


not_a_function = 42


def no_op(params, data, ctx):
    """Returns at once and saves nothing: for measuring orchestration overhead."""
    ctx.report(params["x"], 0)
    return {"score": params["x"]}


def sleepy(params, data, ctx):
    """0.3 s of 'training': long enough for several workers' trials to overlap."""
    import time

    time.sleep(0.3)
    return quadratic(params, data, ctx)  # which also holds when the test says so


def records_threads(params, data, ctx):
    """Keeps, with its checkpoint, how many threads torch had and which GPUs it saw."""
    import os

    import torch

    ctx.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    (ctx.checkpoint_dir / "threads.json").write_text(json.dumps(
        {"threads": torch.get_num_threads(), "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}))
    return {"score": params["x"]}


def sleeps_one_second(params, data, ctx):
    """A trial that takes 1 s and no CPU: measures orchestration scaling alone."""
    import time

    time.sleep(1.0)
    return {"score": params["x"]}


def stepwise(params, data, ctx):
    """quadratic's score reported over 4 steps, asking the pruner after each."""
    from hposweep.api import Pruned

    score = 1.0 - (params["x"] - 0.3) ** 2
    for step in range(4):
        ctx.report(score, step)
        if ctx.should_prune():
            raise Pruned(f"pruned at step {step}: score={score:.3f}")
    return {"score": score}


def per_epoch(params, data, ctx):
    """quadratic's score reported once per epoch of ``train.epochs``, with a checkpoint."""
    for epoch in range(ctx.config.train.epochs):
        ctx.report(1.0 - (params["x"] - 0.3) ** 2, epoch)
    return quadratic(params, data, ctx)


def failed_meanwhile_by_another_worker(params, data, ctx):
    """Trial 0 is failed in the storage while it runs, as a worker on another host does
    when the trial's heartbeat stopped; the trainer itself finishes normally."""
    if ctx.trial_number == 0:
        import optuna

        from hposweep.config.schema import study_name_for
        from hposweep.study.storage import storage_url

        name = study_name_for(ctx.config, ctx.backbone)
        storage = optuna.storages.RDBStorage(storage_url(ctx.config, name))
        trial_id = storage.get_trial_id_from_study_id_trial_number(
            storage.get_study_id_from_name(name), 0)
        storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
    return quadratic(params, data, ctx)


def chatty(params, data, ctx):
    """quadratic, printing as a user's training code does (stdout and stderr)."""
    import sys

    print(f"chatty trainer: trial {ctx.trial_number} x={params['x']:.3f}")
    print(f"chatty trainer: stderr of trial {ctx.trial_number}", file=sys.stderr)
    return fails_when_x_high(params, data, ctx)


def talkative(params, data, ctx):
    """quadratic, then a line on stdout and one on stderr, as a user's training code prints."""
    import sys

    metrics = quadratic(params, data, ctx)
    print(f"talkative trainer: trial {ctx.trial_number} done")
    print(f"talkative trainer: stderr of trial {ctx.trial_number}", file=sys.stderr)
    return metrics


def learning_curve(params, data, ctx):
    """A score that rises each epoch towards quadratic's, a little different per fold;
    asks the pruner after each epoch."""
    from hposweep.api import Pruned

    final = 1.0 - (params["x"] - 0.3) ** 2
    epochs = ctx.config.train.epochs
    for epoch in range(epochs):
        score = final * (epoch + 1) / epochs - 0.02 * (ctx.fold or 0)
        ctx.report(score, epoch)
        if ctx.should_prune():
            raise Pruned(f"pruned at epoch {epoch}: score={score:.3f}")
    return {"score": score}


def interrupted_inside_a_finalizer(params, data, ctx):
    """Ctrl-C arrives while Python runs a finalizer (as it may in SQLAlchemy's garbage-collector
    callbacks): Python prints the KeyboardInterrupt raised there and drops it. Then the trial
    goes on for up to 60 s and completes, unless the interrupt is delivered again."""
    import os
    import signal
    import time

    class SignalledWhileFinalized:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)  # the signal handler runs here, inside the finalizer

    print(f"trial {ctx.trial_number} finalizing", flush=True)
    SignalledWhileFinalized()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.02)
    return quadratic(params, data, ctx)


def two_objectives(params, data, ctx):
    """Two objectives known in closed form, for the Pareto-front tests: ``score = x``
    (maximize) and ``cost = x ** 2 + y`` (minimize); a small checkpoint when asked."""
    wait_if_told()
    metrics = {"score": params["x"], "cost": params["x"] ** 2 + params["y"]}
    if ctx.checkpoint_dir is not None:
        ctx.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        (ctx.checkpoint_dir / "weights.json").write_text(json.dumps(params))
    return metrics


def device_assert_once(params, data, ctx):
    """Trial 1 hits a CUDA device-side assert the first time (while $FATAL_MARKER does not
    exist: it is created then); otherwise as ``quadratic``."""
    import os
    from pathlib import Path

    marker = Path(os.environ["FATAL_MARKER"])
    if ctx.trial_number == 1 and not marker.exists():
        marker.touch()
        raise RuntimeError("CUDA error: device-side assert triggered\nCUDA kernel errors might "
                           "be asynchronously reported at some other API call")
    return quadratic(params, data, ctx)


def plateau_by_x(params, data, ctx):
    """Each fold's score rises linearly to a plateau of ``1 - x`` at its last epoch
    (``train.epochs``), asking the pruner after each epoch; a trial with ``x >= 0.7`` is
    the best on fold 0 (0.95) and bad on every later fold (0.2)."""
    from hposweep.api import Pruned

    x = params["x"]
    plateau = (0.95 if not ctx.fold else 0.2) if x >= 0.7 else 1.0 - x
    epochs = ctx.config.train.epochs
    for epoch in range(epochs):
        score = plateau * (epoch + 1) / epochs
        ctx.report(score, epoch)
        if ctx.should_prune():
            raise Pruned(f"pruned: score={score:.4f}")
    return {"score": score}
