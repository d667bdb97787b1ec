"""The `originality` command line: argv, printing and exit codes live here only."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer

from .diagnostics import InputError, PolicyError, render_diagnostic

__all__ = ["app", "main"]

app = typer.Typer(
    name="originality",
    help="Decide whether a foundation model was independently developed, under versioned policy files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
catalog_app = typer.Typer(help="The reference catalogue of known public models.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")

EXIT_PASS, EXIT_FAIL, EXIT_INVALID, EXIT_INDETERMINATE = 0, 1, 2, 3
_VERDICT_EXIT = {"pass": EXIT_PASS, "fail": EXIT_FAIL, "indeterminate": EXIT_INDETERMINATE}
FORMATS = ("table", "json", "markdown", "html")


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def _fail(message: str) -> None:
    """One clear line on stderr and exit 2."""
    typer.echo(f"error: {message}", err=True)
    raise _Exit(EXIT_INVALID)


def _catalog_dir(catalog: Optional[Path]) -> Optional[Path]:
    if catalog is not None:
        return catalog
    env = os.environ.get("ORIGINALITY_CATALOG")
    return Path(env) if env else None


def _write_output(text: str, output: Optional[Path]) -> None:
    """Print, or write the file whole: a temporary file renamed into place, so a failure
    leaves nothing half-written."""
    if output is None:
        sys.stdout.write(text)
        return
    output = Path(output)
    if output.parent and not output.parent.exists():
        _fail(f"{output}: the folder `{output.parent}` does not exist")
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, output)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        _fail(f"{output}: cannot be written ({(err.strerror or str(err)).lower()})")


def _load_policy(path: Path):
    from .loader import load_policy

    return load_policy(path, _fact_catalogue())


def _fact_catalogue():
    from .catalogue import CatalogueError, load_fact_catalogue

    try:
        return load_fact_catalogue()
    except CatalogueError as err:
        _fail(str(err))


def _parse_sets(pairs: List[str], policy) -> dict[str, Any]:
    from .checker import coerce_param_value

    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            _fail(f"--set `{pair}`: write it as NAME=VALUE, e.g. `derived_threshold=0.95`")
        try:
            out[name.strip()] = coerce_param_value(name.strip(), text.strip(), policy.params)
        except ValueError as err:
            _fail(f"--set `{pair}`: {err}")
    return out


def _detect(model: Path, catalog: Optional[Path], manifest: Optional[Path], progress: bool) -> dict:
    """Run the installed detectors on a model folder (the detectors package's pipeline)."""
    try:
        from detectors.pipeline import detect_model
    except ImportError as err:
        _fail(f"{model}: no detector pipeline is installed ({err})")
    with _progress(progress) as report:
        return detect_model(model, catalog=catalog, manifest=manifest, progress=report)


class _progress:
    """A progress bar on stderr while weights are read, when stderr is a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.bar = None

    def __enter__(self) -> Optional[Callable[[int, int], None]]:
        if not self.enabled:
            return None
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        self.bar = Progress("reading weights", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                            transient=True, console=_stderr_console())
        self.bar.start()
        task = self.bar.add_task("read", total=None)

        def report(done: int, total: int) -> None:
            self.bar.update(task, completed=done, total=total)
        return report

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def _dump_json(data: Any) -> str:
    import json

    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


# -- verbs -------------------------------------------------------------------------------


@app.command()
def check(
    subject: Path = typer.Argument(..., help="a model folder, or a fact sheet (.json)"),
    policy: Path = typer.Option(..., "--policy", "-p", help="policy file"),
    catalog: Optional[Path] = typer.Option(None, "--catalog", help="reference catalogue (or $ORIGINALITY_CATALOG)"),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="manifest, if not in the model folder"),
    set_: List[str] = typer.Option([], "--set", help="override a parameter: NAME=VALUE"),
    format: str = typer.Option("table", "--format", "-f", help="table, json, markdown or html"),
    lang: Optional[str] = typer.Option(None, "--lang", help="message language when a rule has several (ko, en)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="write the report here"),
) -> None:
    """Evaluate a model (detected first) or a fact sheet against a policy.

    Exit 0 pass, 1 fail, 3 indeterminate, 2 invalid input."""
    from .evaluator import evaluate_policy
    from .facts import load_fact_sheet, validate_fact_sheet
    from .report import build_report, render_html, render_markdown, render_table, report_json

    if format not in FORMATS:
        _fail(f"--format `{format}`: choose one of {', '.join(FORMATS)}")
    checked = _load_policy(policy)
    overrides = _parse_sets(set_, checked)
    catalogue = _fact_catalogue()
    if subject.is_dir():
        data = _detect(subject, _catalog_dir(catalog), manifest, progress=True)
        sheet = validate_fact_sheet(data, f"{subject} (detected)", catalogue)
    else:
        sheet = load_fact_sheet(subject, catalogue)
    report = build_report(evaluate_policy(checked, sheet, overrides, lang), overrides)
    if format == "json":
        _write_output(report_json(report), output)
    elif format == "markdown":
        _write_output(render_markdown(report), output)
    elif format == "html":
        _write_output(render_html(report), output)
    elif output is not None:
        _write_output(render_markdown(report), output)
    else:
        from rich.console import Console

        render_table(report, Console())
    raise _Exit(_VERDICT_EXIT[report["verdict"]])


@app.command()
def lint(
    policies: List[Path] = typer.Argument(..., help="policy files"),
    format: str = typer.Option("text", "--format", "-f", help="text or json"),
) -> None:
    """Check policies against the fact catalogue: every problem, with code and place.

    Exit 0 clean, 1 findings (warnings included), 2 a policy that cannot be used."""
    from .diagnostics import sort_diagnostics

    found = []
    invalid = False
    for path in policies:
        try:
            checked = _load_policy(path)
            found.extend(checked.warnings)
        except PolicyError as err:
            invalid = invalid or any(d.severity == "error" for d in err.diagnostics)
            found.extend(err.diagnostics)
    found = sort_diagnostics(found)
    if format == "json":
        typer.echo(_dump_json([d.to_json() for d in found]), nl=False)
    else:
        for d in found:
            typer.echo(render_diagnostic(d) + "\n")
        errors = sum(d.severity == "error" for d in found)
        warnings = len(found) - errors
        if found:
            typer.echo(f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}")
        else:
            typer.echo(f"{len(policies)} polic{'ies' if len(policies) != 1 else 'y'} clean")
    raise _Exit(EXIT_INVALID if invalid else (1 if found else 0))


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point: run the app; bad input of any kind is one line on stderr, exit 2."""
    try:
        app(args=argv, prog_name="originality", standalone_mode=False)
        code = 0
    except _Exit as stop:
        code = stop.code
    except PolicyError as err:
        first = err.diagnostics[0]
        more = len([d for d in err.diagnostics if d.severity == "error"]) - 1
        typer.echo(f"error: {first.one_line()}" + (f" (and {more} more; run `originality lint`)" if more > 0 else ""),
                   err=True)
        code = EXIT_INVALID
    except InputError as err:
        typer.echo(f"error: {err}", err=True)
        code = EXIT_INVALID
    except Exception as err:  # detectors' input errors, click's usage errors, the rest
        code = _report_other(err)
    sys.stdout.flush()
    raise SystemExit(code)


def _report_other(err: Exception) -> int:
    import click

    if isinstance(err, click.exceptions.Exit):
        return err.exit_code
    if isinstance(err, click.ClickException):
        err.show()
        return EXIT_INVALID
    if isinstance(err, click.exceptions.Abort):
        typer.echo("aborted", err=True)
        return EXIT_INVALID
    if type(err).__name__ == "InputError":  # the detectors' own, raised through the pipeline
        typer.echo(f"error: {err}", err=True)
        return EXIT_INVALID
    if os.environ.get("ORIGINALITY_DEBUG"):
        raise err
    typer.echo(f"error: internal error ({type(err).__name__}: {err}); set ORIGINALITY_DEBUG=1 for details",
               err=True)
    return EXIT_INVALID
