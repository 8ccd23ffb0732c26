"""The ``hposweep`` command line. Thin: parse, call, print, exit codes.

Heavy libraries (torch, transformers, optuna, mlflow) are imported inside the
commands, never here, so that ``hposweep --help`` is instant.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from hposweep import interrupts
from hposweep.cli.help import PlainHelpCommand
from hposweep.errors import UserError

if TYPE_CHECKING:  # type names only: the CLI imports no heavy module at start-up
    from hposweep.config.schema import LoadedConfig, SweepConfig
    from hposweep.console.live import LiveConsole
    from hposweep.console.reports import SweepConsole
    from hposweep.reports.status import StudyStatus

EXIT_OK, EXIT_NO_TRIAL, EXIT_BAD_INPUT, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 2, 130, 143

app = typer.Typer(
    help="Hyperparameter sweeps for PyTorch / transformers models: Optuna search, k-fold CV, "
    "best-only checkpoints, MLflow tracking, resumable studies.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    # Plain Click help: Typer's rich help imports rich.markdown/markdown_it (~120 ms),
    # which would double the start-up time of `hposweep --help`.
    rich_markup_mode=None,
)

ConfigArg = Annotated[Path, typer.Argument(help="The sweep's YAML config file.",
                                            show_default=False, metavar="CONFIG")]
OverridesArg = Annotated[
    list[str] | None,
    typer.Argument(help="Overrides as key=value, e.g. study.max_trials=40 train.epochs=3.",
                   show_default=False, metavar="KEY=VALUE"),
]


@app.command(cls=PlainHelpCommand)
def run(
    config: ConfigArg,
    overrides: OverridesArg = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print only a JSON summary.")] = False,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="Archive an existing study dir (never deleted) and start again.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                          help="Show tracebacks of failed trials.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the config and the studies it would create or resume; "
        "train nothing, write nothing.")] = False,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1, metavar="K", help="Trials at once on this machine, one process each "
        "(default: study.n_workers).")] = None,
) -> None:
    """Run (or resume) the sweep described by CONFIG."""
    from hposweep.workers.events import console_for_run

    console = console_for_run(json_output, verbose)
    typed = overrides or []
    resume = shlex.join(["hposweep", "run", str(config), *typed,
                         *(["--workers", str(workers)] if workers else [])])
    try:
        loaded = _load(console, config,
                       [*typed, *([f"study.n_workers={workers}"] if workers else [])])
        if dry_run:
            console.dry_run(loaded.unresolved_yaml, _statuses(loaded.config))
            console.output_dir(loaded.config.output_dir)
            return
    except UserError as exc:
        _fail(console, exc)
    console.output_dir(loaded.config.output_dir)
    try:
        from hposweep.sweep import backbone as sweep

        if loaded.config.study.n_workers > 1:
            from hposweep.workers.processes import run_workers

            if fresh:  # once, before any worker starts
                sweep.archive_studies(loaded.config, console, loaded.config.backbones)
            outcome = run_workers(loaded, typed, loaded.config.study.n_workers, console,
                                  verbose)
            if outcome.interrupted:
                console.interrupted(resume)
            if outcome.code is not None:
                raise typer.Exit(outcome.code)
            results, failed = outcome.results, outcome.failed
        else:
            with interrupts.interruptible():
                results, failed = sweep.run(loaded, console, fresh=fresh), False
    except UserError as exc:
        _fail(console, exc)
    except KeyboardInterrupt as exc:
        interrupts.received()
        console.interrupted(resume)
        raise typer.Exit(EXIT_SIGTERM if isinstance(exc, interrupts.Terminated)
                         else EXIT_SIGINT) from None
    except typer.Exit:
        raise
    except Exception as exc:  # a bug of ours: loud, with its traceback, never a FAIL row
        console.internal_error(exc)
        raise typer.Exit(EXIT_NO_TRIAL) from None
    stopped = any(r.stopped == "max_failures" or r.final_error for r in results)
    code = (EXIT_OK if all(r.best_trial is not None for r in results) and not stopped
            and not failed else EXIT_NO_TRIAL)
    console.run_finished(results, code)
    raise typer.Exit(code)


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@app.command(cls=PlainHelpCommand)
def refit(
    config: ConfigArg,
    overrides: OverridesArg = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Refit even where a final model of the chosen trial exists (e.g. with "
        "other final.epochs); it is replaced once the new one is complete.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print only a JSON summary.")] = False,
) -> None:
    """Run the final stage of each backbone's study: the best trial's hyperparameters
    trained once on all the training data, then scored on the test set (data.test).

    Exits 1 when a backbone's final stage failed, 2 when a study does not exist.
    """
    import json

    from hposweep.console.reports import SweepConsole

    console = SweepConsole("json" if json_output else None)
    try:
        loaded = _load(console, config, overrides)
        from hposweep.sweep.backbone import refit as refit_studies

        with interrupts.interruptible():
            outcomes = refit_studies(loaded, console, force)
    except UserError as exc:
        _fail(console, exc)
    except KeyboardInterrupt as exc:
        interrupts.received()
        raise typer.Exit(EXIT_SIGTERM if isinstance(exc, interrupts.Terminated)
                         else EXIT_SIGINT) from None
    if json_output:
        console.out.print_json(json.dumps({b: o.to_json() for b, o in outcomes.items()}))
    raise typer.Exit(EXIT_NO_TRIAL if any(o.error for o in outcomes.values()) else EXIT_OK)


@app.command(cls=PlainHelpCommand)
def status(config: ConfigArg, overrides: OverridesArg = None, json_output: JsonOption = False
           ) -> None:
    """Show each study's trials, best so far, trials remaining and pending resumes.

    Reads the study storage only: trains nothing, writes nothing.
    """
    def render(console: SweepConsole, cfg: SweepConfig, statuses: list[StudyStatus]) -> None:
        console.output_dir(cfg.output_dir)  # where it looked, also when it found no study
        for s in statuses:
            console.study_status(s)

    _report(config, overrides, json_output, render)


@app.command(cls=PlainHelpCommand)
def best(config: ConfigArg, overrides: OverridesArg = None, json_output: JsonOption = False
         ) -> None:
    """Show the best trial of each backbone: value, params, checkpoint, MLflow run ids.

    Exits 1 when no backbone has a completed trial.
    """
    statuses = _report(config, overrides, json_output,
                       lambda console, cfg, statuses: console.best(statuses))
    if all(s.best_trial is None for s in statuses):
        raise typer.Exit(EXIT_NO_TRIAL)


@app.command(cls=PlainHelpCommand)
def compare(config: ConfigArg, overrides: OverridesArg = None, json_output: JsonOption = False
            ) -> None:
    """Compare backbones: best value, mean ± std over folds of the best trial, trials, time."""
    _report(config, overrides, json_output,
            lambda console, cfg, statuses: console.compare(statuses))


@app.command(cls=PlainHelpCommand)
def export(
    config: Annotated[Path | None, typer.Argument(help="The sweep's YAML config file.",
                                                  show_default=False, metavar="CONFIG")] = None,
    overrides: OverridesArg = None,
    to: Annotated[Path | None, typer.Option(
        "--to", metavar="DIR", help="A new (or empty) dir; with several backbones, one subdir each.")] = None,
    verify: Annotated[Path | None, typer.Option(
        "--verify", metavar="DIR", help="Check an export against its MANIFEST.sha256 instead.")] = None,
    choice: Annotated[str | None, typer.Option(
        "--select", metavar="CHOICE", help="With a Pareto front: knee (the default), 'trial N' or "
        "'METRIC <= X' (the kept member that satisfies it, best in the first objective); "
        "exports that trial's checkpoint.")
    ] = None,
    source: Annotated[str, typer.Option(
        "--from", metavar="final|best", help="final: the final model (final.refit) where there "
        "is one, else the best trial's checkpoint; best: the best trial's checkpoint "
        "(with k-fold, one fold's model).")] = "final",
) -> None:
    """Export the final model (final.refit) or else the best trial's checkpoint as a
    production checkpoint (weights, config, tokenizer, model card, SHA-256 manifest), from
    the local checkpoint or else from MLflow."""
    from hposweep.console.reports import SweepConsole

    console = SweepConsole()
    try:
        if verify is not None:
            from hposweep.reports.export import verify as verify_export

            problems = verify_export(verify)
            for problem in problems:
                console.error(f"{verify}: {problem}")
            if problems:
                raise typer.Exit(EXIT_NO_TRIAL)
            console.info(f"{verify}: every file matches MANIFEST.sha256")
            return
        if config is None or to is None:
            raise UserError("give CONFIG and --to DIR (or --verify DIR)")
        if source not in ("final", "best"):
            raise UserError(f"--from {source!r}: use final or best")
        from hposweep.config.schema import backbone_slug
        from hposweep.reports.export import export_best, select

        cfg = _load(console, config, overrides, check_files=False).config
        for status in _statuses(cfg):
            if choice is not None and status.best_trial is not None:
                status = select(cfg, status, choice)
            # --select or --from best: the chosen trial's own checkpoint
            final = status.final if choice is None and source == "final" else None
            target = to if len(cfg.backbones) == 1 else to / backbone_slug(status.backbone)
            done = export_best(cfg, status, target, console.warn, final)
            what = (f"the final model (trial {final['trial']})" if final
                    else f"trial {status.best_trial}")
            console.info(f"{status.backbone}: {what} exported to {done}")
    except UserError as exc:
        _fail(console, exc)


@app.command(cls=PlainHelpCommand)
def plot(
    config: ConfigArg,
    overrides: OverridesArg = None,
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="Dir for the plots.")] = Path("plots"),
    force: Annotated[bool, typer.Option("--force", help="Replace plots already there.")] = False,
) -> None:
    """Plot each study: optimization history, parameter importances, parallel coordinate,
    slice and intermediate values, as one self-contained HTML page per study."""
    import optuna

    from hposweep.console.reports import SweepConsole
    from hposweep.reports.plots import write_plots
    from hposweep.study.storage import make_storage, storage_url

    console = SweepConsole()
    plotted = False
    try:
        cfg = _load(console, config, overrides, check_files=False).config
        for status in _statuses(cfg):
            if not status.exists:
                console.warn(f"{status.backbone}: no study {status.study_name!r} yet")
                continue
            page = out / f"{status.study_name}.html"
            if page.exists() and not force:
                raise UserError(f"{page} exists: use --force to replace it, or another --out")
            storage = make_storage(storage_url(cfg, status.study_name), reading=True)
            study = optuna.load_study(study_name=status.study_name, storage=storage)
            for path in write_plots(study, cfg, out, console.warn, status.front):
                console.info(f"{status.backbone}: {path}")
                plotted = True
    except UserError as exc:
        _fail(console, exc)
    if not plotted:
        console.error("nothing to plot: no study has a finished trial")
        raise typer.Exit(EXIT_NO_TRIAL)


@app.command(cls=PlainHelpCommand)
def dashboard(
    config: ConfigArg,
    overrides: OverridesArg = None,
    port: Annotated[int, typer.Option("--port", min=0, max=65535,
                                      help="Port (the next ones for other storages).")] = 8080,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """A live web dashboard (optuna-dashboard) of each study, on the study's own storage.

    Read-only: it writes nothing to the study. Ctrl-C ends it. Needs the `dashboard` extra.
    """
    import threading

    from hposweep.config.loading import load
    from hposweep.console.reports import SweepConsole
    from hposweep.reports import dashboard as board

    console = SweepConsole()
    servers: list[board.Server] = []
    try:  # Ctrl-C at any moment is how the dashboard ends: exit 0
        board.require_extra()
        cfg = load(config, overrides or [], check_files=False).config
        servers = board.plan(cfg, console.warn)
        board.start(servers, host, port)
        if board.exposed(host):
            console.warn(f"listening on {host}: the dashboard has no authentication; anyone "
                         "who can reach this address sees the studies (it cannot change them)")
        for server in servers:
            for backbone, study_id in server.studies:
                console.info(f"{backbone}: {server.study_url(study_id)}")
        console.info("Ctrl-C stops the dashboard")
        threading.Event().wait()
    except UserError as exc:
        _fail(console, exc)
    except KeyboardInterrupt:
        pass
    finally:
        board.stop(servers)


def _statuses(cfg: SweepConfig) -> list[StudyStatus]:
    from hposweep.reports.status import study_status

    return [study_status(cfg, backbone) for backbone in cfg.backbones]


def _load(console: LiveConsole, config: Path, overrides: list[str] | None,
          check_files: bool = True) -> LoadedConfig:
    """The config, each deprecated key it uses warned about on one line."""
    from hposweep.config.loading import load

    loaded = load(config, overrides or [], check_files=check_files)
    for line in loaded.deprecations:
        console.warn(line)
    return loaded


def _report(config: Path, overrides: list[str] | None, json_output: bool,
            render: Callable[[SweepConsole, SweepConfig, list[StudyStatus]], object]
            ) -> list[StudyStatus]:
    """The read-only commands: each study's status, as JSON or rendered."""
    import json

    from hposweep.console.reports import SweepConsole

    console = SweepConsole()
    try:
        cfg = _load(console, config, overrides, check_files=False).config
        statuses = _statuses(cfg)
    except UserError as exc:
        _fail(console, exc)
    if json_output:
        console.out.print_json(json.dumps([s.to_json() for s in statuses], default=str))
    else:
        render(console, cfg, statuses)
    return statuses


@app.command(cls=PlainHelpCommand)
def validate(config: ConfigArg, overrides: OverridesArg = None) -> None:
    """Check CONFIG (with overrides) and print the merged config, or the error.

    ``${oc.env:...}`` interpolations are printed as written, never their secret values.
    """
    from hposweep.console.reports import SweepConsole

    console = SweepConsole()
    try:
        loaded = _load(console, config, overrides)
    except UserError as exc:
        _fail(console, exc)
    console.out.print(loaded.unresolved_yaml, markup=False, end="")
    given = f" with {len(overrides)} override{'s' if len(overrides) > 1 else ''}" if overrides else ""
    console.out.print(f"# {config}{given}: valid", markup=False)  # a YAML comment: still YAML


def _fail(console: LiveConsole, exc: UserError) -> NoReturn:
    console.error(str(exc))
    raise typer.Exit(exc.exit_code)


def main() -> None:
    from hposweep.console.streams import forgiving_output

    with forgiving_output():
        app()


if __name__ == "__main__":
    main()
