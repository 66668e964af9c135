"""The ``unicomp`` command: parse, call :mod:`unicomp.api`, render with rich.

Every :class:`~unicomp.errors.UnicompError` becomes one line on stderr and its exit
code (usage 2, input 3, format 4, model 5, plugin 6); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from unicomp import __version__
from unicomp.core.config import EFFORTS
from unicomp.errors import INTERNAL_EXIT_CODE, UnicompError, UsageError

if TYPE_CHECKING:
    from unicomp.bench.report import BenchReport, GroupReport
    from unicomp.folders import FolderSummary, Shard
    from unicomp.workers import Outcome

#: typer turns Ctrl-C into exit 130; unicomp's documented code for it is 1.
TYPER_INTERRUPTED = 130
EXIT_INTERRUPTED = 1
#: Table cells up to this long (numbers, names) keep their width in narrow terminals.
SHORT_CELL = 24

app = typer.Typer(
    name="unicomp",
    help="Generative signal compression: compress, decompress, train and benchmark.\n\n"
    "Exit codes: 0 ok, 2 usage, 3 bad input, 4 bad .ucz file, 5 model problem, "
    "6 plugin problem, 70 internal error; Ctrl-C exits with 1 and writes nothing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        out.print(f"unicomp {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    # Accepted and listed here; main() is what reads it (see there).
    _debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    """Generative signal compression."""


Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
Force = Annotated[bool, typer.Option("--force", "-f", help="Overwrite an existing output.")]
Output = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Output file; the output folder if INPUT is a folder."),
]
Workers = Annotated[
    int, typer.Option("--workers", "-j", min=1, help="Worker processes when INPUT is a folder.")
]
ModelOption = Annotated[
    str | None, typer.Option("--model", "-m", help="Model name or path to a model card.")
]
#: ``--effort``'s choices (core/config.py, which imports no torch).
Effort = enum.Enum("Effort", {name: name for name in EFFORTS}, type=str)  # type: ignore[misc]
DEFAULT_EFFORT = Effort("default")

_DEVICES = "auto (a CUDA GPU when present), cpu, cuda or cuda:N"
#: Encoding and training default to a GPU when there is one; decoding and the bench to
#: the CPU, where the decoding contract promises identical samples (docs/format.md).
FastDevice = Annotated[str, typer.Option("--device", help=f"Where the networks run: {_DEVICES}.")]
ExactDevice = Annotated[
    str,
    typer.Option(
        "--device",
        help=f"Where the networks run: {_DEVICES}. Only the CPU decodes to identical samples "
        "on every machine.",
    ),
]
ShardOption = Annotated[
    str | None,
    typer.Option(
        "--shard",
        help="K/N: code only shard K (1..N) of the folder's files, split by path, so that N "
        "machines share a corpus.",
    ),
]


@app.command()
def compress(
    input: Annotated[Path, typer.Argument(help="Signal file (image, audio, ...) or folder.")],
    output: Output = None,
    model: ModelOption = None,
    rate: Annotated[
        str | None,
        typer.Option(
            help="Rate every file meets (at most it, at most 3 % under), anywhere in the "
            "model's range, e.g. 0.2bpp or 1.5kbps. Default: the model's default rate."
        ),
    ] = None,
    effort: Annotated[
        Effort,
        typer.Option(
            help="Latent search: fast sends the encoder's output, best searches up to "
            "about 10 times longer."
        ),
    ] = DEFAULT_EFFORT,
    admm_iters: Annotated[
        int | None,
        typer.Option(
            "--admm-iters",
            min=0,
            help="Latent search iterations, overriding --effort's; 0 sends the encoder output.",
        ),
    ] = None,
    metrics: Annotated[bool, typer.Option("--metrics", help="Decode and report quality.")] = False,
    force: Force = False,
    quiet: Quiet = False,
    as_json: AsJson = False,
    workers: Workers = 1,
    shard: ShardOption = None,
    device: FastDevice = "auto",
) -> None:
    """Compress a signal file into a .ucz file (beside it unless -o).

    A folder is compressed file by file into the folder -o, recursively, keeping names:
    DIR/a/x.png becomes OUT/a/x.png.ucz; existing outputs are skipped unless --force.
    """
    from unicomp import api
    from unicomp.core.devices import resolve_device

    where = str(resolve_device(device))
    if input.is_dir():
        from unicomp.folders import compress_folder

        if metrics:
            raise UsageError("--metrics measures single files, not folders")
        run = functools.partial(
            compress_folder,
            model=model,
            rate=rate,
            effort=effort.value,
            admm_iterations=admm_iters,
            overwrite=force,
            workers=workers,
            shard=_shard(shard),
            device=where,
        )
        _run_folder(run, "compressed", input, output, quiet, as_json)
        return
    if shard is not None:
        raise UsageError("--shard splits folders, not single files")
    with _progress(quiet or as_json) as progress:
        task = progress.add_task("searching latent", total=None)

        def advance(iteration: int, budget: int) -> None:
            progress.update(task, completed=iteration, total=budget)

        result = api.compress(
            input,
            output,
            model=model,
            rate=rate,
            effort=effort.value,
            admm_iterations=admm_iters,
            overwrite=force,
            metrics=metrics,
            on_iteration=advance,
            device=where,
        )
    report = result.report
    if as_json:
        out.print_json(
            data={"output": str(result.output), **report.__dict__, "metrics": result.metrics}
        )
        return
    if quiet:
        return
    asked = ""
    if report.target_rate is not None:
        asked = (
            f" (asked {report.target_rate:g}: point {report.operating_point}, "
            f"{report.rate_trials} rate trials, {report.rate_seconds:.2f} s)"
        )
    correction = f"correction {report.refinement_bits // 8}, " if report.refinement_bits else ""
    line = (
        f"{result.output}: {report.rate:.4g} {report.rate_unit}{asked} "
        f"({report.total_bits // 8} bytes: payload {report.payload_bits // 8}, {correction}"
        f"header {report.header_bits // 8}; entropy estimate "
        f"{report.estimated_bits / 8:.0f}), {report.iterations} search iterations, "
        f"{report.seconds:.1f} s"
    )
    if result.metrics:
        line += "; " + ", ".join(f"{k} {v:.4g}" for k, v in result.metrics.items())
    out.print(line, highlight=False, markup=False)


@app.command()
def decompress(
    input: Annotated[Path, typer.Argument(help="A .ucz file or a folder of them.")],
    output: Output = None,
    model: ModelOption = None,
    force: Force = False,
    quiet: Quiet = False,
    as_json: AsJson = False,
    workers: Workers = 1,
    shard: ShardOption = None,
    device: ExactDevice = "cpu",
) -> None:
    """Decode a .ucz file with the model named in its header.

    A folder of .ucz files is decoded into the folder -o: OUT/a/x.png.ucz becomes
    DIR/a/x.png; existing outputs are skipped unless --force.
    """
    from unicomp import api
    from unicomp.core.devices import resolve_device

    where = str(resolve_device(device))
    if input.is_dir():
        from unicomp.folders import decompress_folder

        run = functools.partial(
            decompress_folder,
            model=model,
            overwrite=force,
            workers=workers,
            shard=_shard(shard),
            device=where,
        )
        _run_folder(run, "decompressed", input, output, quiet, as_json)
        return
    if shard is not None:
        raise UsageError("--shard splits folders, not single files")
    result = api.decompress(input, output, model=model, overwrite=force, device=where)
    if as_json:
        out.print_json(
            data={
                "output": str(result.output),
                "model": result.header.model,
                "modality": result.header.modality,
            }
        )
    elif not quiet:
        out.print(
            f"{result.output}: decoded with {result.header.model}", highlight=False, markup=False
        )


@app.command()
def info(
    file: Annotated[Path, typer.Argument(help="A .ucz file.")],
    as_json: AsJson = False,
) -> None:
    """Show the header and byte layout of a .ucz file."""
    from unicomp import api

    description = api.describe(file)
    if as_json:
        out.print_json(data=description)
        return
    table = Table(title=str(file), show_header=False)
    for key, value in description.items():
        if key != "file":
            table.add_row(key, Text(_plain(value)))  # header strings are not markup
    out.print(table)


@app.command()
def plugins(as_json: AsJson = False) -> None:
    """List every plugin, where it comes from and what it registers."""
    from unicomp.plugins.manager import get_registry

    registry = get_registry()
    if as_json:
        out.print_json(data=[dataclasses.asdict(p) for p in registry.plugins])
        return
    table = Table(title="unicomp plugins")
    for column in ("plugin", "from", "registers", "status"):
        table.add_column(column)
    for p in registry.plugins:
        table.add_row(
            p.name,
            p.source,
            "\n".join(p.provides) or "-",
            f"[red]failed: {p.error}[/red]" if p.error else "ok",
        )
    out.print(table)


@app.command()
def models(as_json: AsJson = False) -> None:
    """List the models unicomp can find (bundled, installed, UNICOMP_MODEL_PATH)."""
    from unicomp.core.catalog import available_models
    from unicomp.core.checkpoint import read_card
    from unicomp.plugins.manager import get_registry

    rows = []
    for card_path in available_models(get_registry().model_dirs):
        card = read_card(card_path)
        rows.append(
            {
                "name": card["name"],
                "modality": card["modality"],
                "card": str(card_path),
                "steps": card.get("training", {}).get("steps"),
            }
        )
    if as_json:
        out.print_json(data=rows)
        return
    if not rows:
        out.print("no models found")
        return
    table = Table(title="unicomp models")
    for column in ("name", "modality", "training steps", "card"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], row["modality"], _plain(row["steps"]), row["card"])
    out.print(table)


@app.command()
def train(
    modality: Annotated[str, typer.Option(help="Modality to train (see `unicomp plugins`).")],
    data: Annotated[Path, typer.Option(help="Folder of training files.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for checkpoints and the model.")],
    config: Annotated[Path | None, typer.Option(help="TOML file overriding the defaults.")] = None,
    name: Annotated[str | None, typer.Option(help="Model name (default: the modality's).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoint in --out.")] = False,
    start_from: Annotated[
        str | None,
        typer.Option(
            "--start-from",
            help="Begin a new run from this model's weights (a name or card): fine-tuning.",
        ),
    ] = None,
    device: FastDevice = "auto",
    precision: Annotated[
        str, typer.Option(help="fp32, or bf16 (autocast) where the device computes in it.")
    ] = "fp32",
    loader_workers: Annotated[
        int,
        typer.Option(
            "--loader-workers", min=0, help="Processes that prepare batches ahead (0: none)."
        ),
    ] = 0,
    quiet: Quiet = False,
) -> None:
    """Train a model: float, soft and hard quantization phases.

    Under torchrun it trains with DDP, one GPU per rank (NCCL) or CPU ranks (gloo); a job
    torchrun restarts resumes from the last checkpoint in --out on its own. With
    --start-from, the run fine-tunes a model: its weights, its config (under --config's
    overrides) and its name with "-tuned" (unless --name) are the start.
    """
    from unicomp.core.config import load_overrides, merge
    from unicomp.core.devices import check_precision, resolve_device
    from unicomp.core.trainer import Hardware
    from unicomp.core.trainer import train as run_training
    from unicomp.plugins.manager import get_registry

    where = resolve_device(device)
    hardware = Hardware(where, check_precision(precision, where), loader_workers)
    chosen = get_registry().modality(modality)
    overrides = load_overrides(config) if config is not None else {}
    initial = None
    if start_from is None:
        settings = merge(chosen.default_config(), overrides)
    else:
        from unicomp.api import load_codec

        initial = load_codec(start_from).model
        if initial.config.modality != chosen.name:
            raise UsageError(f"model {initial.name!r} is a {initial.config.modality} model")
        settings = merge(initial.config, {"name": f"{initial.name}-tuned", **overrides})
    if name is not None:
        settings.name = name
    card = {"training": {"command": " ".join(["unicomp", *sys.argv[1:]])}}
    total = settings.train.total_steps
    with _progress(quiet) as progress:
        task = progress.add_task("training", total=total)

        def show(report: Any) -> None:
            losses = " ".join(f"{k[:5]} {v:.4f}" for k, v in report.losses.items())
            progress.update(
                task,
                completed=report.step,
                description=f"{report.phase} {report.step}/{total} {losses} "
                f"{report.steps_per_second:.2f} it/s",
            )

        card_path = run_training(
            chosen,
            settings,
            data,
            out_dir,
            resume=resume,
            on_step=show,
            card=card,
            hardware=hardware,
            start_from=initial,
        )
    if card_path is not None and not quiet:
        from unicomp.core.checkpoint import read_card

        for name, reason in read_card(card_path).get("data", {}).get("excluded", {}).items():
            out.print(f"left out {name}: {reason}", highlight=False, markup=False)
        out.print(f"model written to {card_path}", highlight=False, markup=False)


@app.command()
def bench(
    modality: Annotated[str, typer.Option(help="Modality to benchmark (see `unicomp plugins`).")],
    data: Annotated[Path, typer.Option(help="Folder of signals to code.")],
    codecs: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated codecs (default: unicomp, unicomp-fast and every baseline; "
            "unicomp-best only when named)."
        ),
    ] = None,
    model: ModelOption = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for JSON, CSV, plots and resumable records.")
    ] = Path("results"),
    anchor: Annotated[
        str | None,
        typer.Option(
            help="Codec the BD metrics and the quality-at-its-rates table compare against "
            "(default: the first codec with results)."
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Skip what --out already measured.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", "-f", help="Discard earlier results.")] = False,
    device: ExactDevice = "cpu",
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Rate-distortion and speed of unicomp against baseline codecs; Ctrl-C keeps results."""
    from unicomp.bench.export import summary_json
    from unicomp.bench.run import run_bench
    from unicomp.core.devices import resolve_device

    names = [name.strip() for name in codecs.split(",") if name.strip()] if codecs else None
    with _progress(quiet or as_json) as progress:
        task = progress.add_task("bench", total=None)

        def advance(done: int, total: int, what: str) -> None:
            progress.update(task, completed=done, total=total, description=what)

        report = run_bench(
            modality,
            data,
            out_dir,
            codecs=names,
            model=model,
            anchor=anchor,
            resume=resume,
            overwrite=force,
            on_progress=advance,
            device=str(resolve_device(device)),
        )
    if as_json:
        out.print_json(data=summary_json(report))
    elif not quiet:
        _render_bench(report, anchor)
    if report.interrupted:
        err.print(
            f"interrupted: {len(report.records)} measurements kept in {out_dir}; "
            "rerun with --resume to finish",
            highlight=False,
        )
        raise typer.Exit(1)


def _run_folder(
    run: Callable[..., FolderSummary],
    verb: str,
    source: Path,
    target: Path | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Code a folder under a progress bar: one line per failed file, then a summary."""
    if target is None:
        raise UsageError(f"{source} is a folder: name the output folder with -o")
    with _progress(quiet or as_json) as progress:
        task = progress.add_task(escape(str(source)), total=None)

        def started(total: int) -> None:
            progress.update(task, total=total)

        def finished(outcome: Outcome) -> None:
            progress.advance(task)
            if outcome.status == "failed":
                named = str(outcome.source) in outcome.message
                line = outcome.message if named else f"{outcome.source}: {outcome.message}"
                progress.console.print(
                    f"error: {line}", highlight=False, markup=False, soft_wrap=True
                )

        summary = run(source, target, on_start=started, on_file=finished)
    if as_json:
        out.print_json(data={"output": str(target), **dataclasses.asdict(summary)})
    elif not quiet:
        notes = (
            (summary.skipped, "skipped (output exists; --force overwrites)"),
            (summary.failed, "failed"),
            (summary.ignored, "other files ignored"),
        )
        line = f"{verb} {summary.done} of {summary.total} files into {target}"
        if summary.shard != "1/1":
            line += f" (shard {summary.shard}; {summary.other_shards} files in other shards)"
        line += f" in {summary.seconds:.1f} s"
        line += "".join(
            f"; {unit} min {r.minimum:.4g}, mean {r.mean:.4g}, max {r.maximum:.4g}"
            for unit, r in summary.rates.items()
        )
        line += "".join(f"; {count} {what}" for count, what in notes if count)
        out.print(line, highlight=False, markup=False, soft_wrap=True)
    if summary.interrupted:
        err.print(
            "interrupted: the outputs written are whole; rerun to do the rest "
            "(existing outputs are skipped)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_INTERRUPTED)
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)


def _shard(text: str | None) -> Shard:
    from unicomp.folders import Shard

    return Shard() if text is None else Shard.parse(text)


def _render_bench(report: BenchReport, wanted_anchor: str | None) -> None:
    _print_bench_tables(report)
    for group in report.groups:
        _print_bench_tables(report, group)
    if report.anchor is None and wanted_anchor is not None:
        out.print(f"no BD metrics: anchor {wanted_anchor} has no results", highlight=False)
    for name, reason in report.unavailable.items():
        out.print(Text.assemble((f"skipped {name}: ", "yellow"), reason))
    for curve in report.curves:
        if curve.failures:
            count = f"{curve.codec} failed {len(curve.failures)} time(s)"
            out.print(Text.assemble((count, "red"), f", first: {curve.failures[0]}"))
    out.print(
        f"{report.measured} measured, {report.resumed} resumed; "
        f"{len(report.outputs)} files written to {report.outputs[0].parent}",
        highlight=False,
    )


def _print_bench_tables(report: BenchReport, group: GroupReport | None = None) -> None:
    """The results, BD and at-anchor-rates tables of the whole run, or of one group."""
    from unicomp.bench.tables import at_rates_table, bd_table, results_table

    part = group or report
    title = f"{report.modality}: {len(report.items)} items"
    which = ""
    if group is not None:
        title, which = f"{group.name} ({len(group.items)} items)", f" ({group.name})"
    results = results_table(part.curves, report.rate_unit, report.metrics, report.size_unit)
    out.print(_rich_table(results, title))
    if report.anchor is not None and part.bd:
        out.print(_rich_table(bd_table(part.bd, report.anchor), f"Bjøntegaard deltas{which}"))
    if report.anchor is not None and part.at_anchor_rates:
        table = at_rates_table(
            part.at_anchor_rates, report.anchor, report.rate_unit, report.metrics
        )
        out.print(_rich_table(table, f"Quality at the rates of {report.anchor}{which}"))


def _rich_table(table: tuple[list[str], list[list[str]]], title: str) -> Table:
    headers, rows = table
    rendered = Table(title=title)
    for index, header in enumerate(headers):  # short cells (numbers) are never cut
        widest = max((len(row[index]) for row in rows), default=0)
        short = widest <= SHORT_CELL
        rendered.add_column(header, min_width=widest if short else None, no_wrap=short)
    for row in rows:
        rendered.add_row(*row)
    return rendered


def _progress(disabled: bool) -> Progress:
    """A transient bar on a terminal; nothing in a log (rich would leave a blank line there)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=disabled or not err.is_terminal,
    )


def _plain(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def main() -> None:
    """Console-script entry point: run the app and map errors to exit codes.

    ``--debug`` is read here, not by the app, so that it also shows the traceback of an
    error raised while the options are parsed."""
    debug = "--debug" in sys.argv[1:]
    try:
        app()
    except SystemExit as done:
        if done.code != TYPER_INTERRUPTED:
            raise
        _interrupted()
    except KeyboardInterrupt:  # Ctrl-C before typer guards the command (its set-up)
        _interrupted()
    except UnicompError as error:
        if debug:
            raise
        err.print(f"{_rank()}error: {error}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(error.exit_code)
    except Exception as error:
        if debug:
            raise
        err.print(
            f"{_rank()}internal error: {type(error).__name__}: {error} (rerun with --debug)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        sys.exit(INTERNAL_EXIT_CODE)


def _interrupted() -> NoReturn:
    err.print("interrupted", highlight=False)
    sys.exit(EXIT_INTERRUPTED)


def _rank() -> str:
    """``"rank N: "`` in a torchrun job of several processes, whose errors all reach one
    terminal; empty otherwise."""
    world_size, rank = os.environ.get("WORLD_SIZE", ""), os.environ.get("RANK", "")
    return f"rank {rank}: " if world_size.isdigit() and int(world_size) > 1 and rank else ""
