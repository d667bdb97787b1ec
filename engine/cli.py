"""The `originality` command line: argv, printing and exit codes live here only."""

from __future__ import annotations

import gc
import io
import os
import signal
import stat
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

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
EXIT_INTERRUPTED = 130  # as a shell reports a command stopped by Ctrl-C
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


def _write_output(text: str, output: Optional[Path], inputs: Sequence[Optional[Path]] = ()) -> None:
    """Print, or write the file whole: a temporary file renamed into place, so a failure
    or an interrupt leaves nothing half-written. A symlink is written through to its
    target; a pipe or a device, which cannot be replaced, is written straight. An output
    that is one of the command's `inputs` is refused."""
    if output is None:
        sys.stdout.write(text)
        return
    target = _output_target(output, inputs)
    if target.exists() and not target.is_file() and not target.is_dir():
        try:
            with open(target, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as err:
            _fail(f"{output}: cannot be written ({(err.strerror or str(err)).lower()})")
        return
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        if target.is_file():  # a report written over a private one stays private
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        _fail(f"{output}: cannot be written ({(err.strerror or str(err)).lower()})")
    except BaseException:  # an interrupt: nothing is left behind
        tmp.unlink(missing_ok=True)
        raise


def _write_table(render: Callable[[Any, Any], None], data: Any, output: Optional[Path],
                 inputs: Sequence[Optional[Path]]) -> None:
    """Tables on the terminal, or the same as plain text into the `output` file."""
    from rich.console import Console

    if output is None:
        render(data, Console())
        return
    console = Console(record=True, width=120, file=io.StringIO(), color_system=None)
    render(data, console)
    _write_output(console.export_text(), output, inputs)


def _output_target(output: Path, inputs: Sequence[Optional[Path]] = ()) -> Path:
    """Where `-o` writes (a symlink's target), or a clear error when it cannot be there."""
    output = Path(output)
    if output.name in ("", ".", ".."):
        _fail(f"{output or repr(str(output))}: not a file name for the output")
    target = Path(os.path.realpath(output))
    for source in inputs:  # a file, or a folder whose every file is read (a model, a catalogue)
        if source is None or not source.exists():
            continue
        if source.is_dir() and target.is_relative_to(os.path.realpath(source)):
            # Even a new file: the next reading of the folder would find it (a model's digest).
            _fail(f"{output}: lies in `{source}`, which this command reads; write the output elsewhere")
        if not target.exists():
            continue
        if not source.is_dir() and os.path.samefile(source, target):
            _fail(f"{output}: is one of this command's inputs; write the output elsewhere")
    if not target.parent.exists():
        _fail(f"{output}: the folder `{output.parent}` does not exist")
    if target.is_dir():
        _fail(f"{output}: is a folder")
    return target


def _load_policy(path: Path):
    from .loader import load_policy

    return load_policy(path, _fact_catalogue())


def _fact_catalogue():
    from .catalogue import CatalogueError, load_fact_catalogue

    try:
        return load_fact_catalogue()
    except CatalogueError as err:
        _fail(str(err))


def _parse_sets(pairs: List[str], policy, flag: str = "--set") -> dict[str, Any]:
    from .checker import coerce_param_value

    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            _fail(f"{flag} `{pair}`: write it as NAME=VALUE, e.g. `tokenizer_overlap_limit=0.95`")
        try:
            out[name.strip()] = coerce_param_value(name.strip(), text.strip(), policy.params)
        except ValueError as err:
            _fail(f"{flag} `{pair}`: {err}")
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
    if lang not in (None, "ko", "en"):
        _fail(f"--lang `{lang}`: policies are written in `ko` and `en`")
    checked = _load_policy(policy)
    overrides = _parse_sets(set_, checked)
    catalogue = _fact_catalogue()
    if subject.is_dir():
        data = _detect(subject, _catalog_dir(catalog), manifest, progress=True)
        sheet = validate_fact_sheet(data, f"{subject} (detected)", catalogue)
    else:
        sheet = load_fact_sheet(subject, catalogue)
    report = build_report(evaluate_policy(checked, sheet, overrides, lang), overrides)
    inputs = (subject, policy, manifest, _catalog_dir(catalog))
    if format == "json":
        _write_output(report_json(report), output, inputs)
    elif format == "markdown":
        _write_output(render_markdown(report), output, inputs)
    elif format == "html":
        _write_output(render_html(report), output, inputs)
    else:
        _write_table(render_table, report, output, inputs)
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


@app.command()
def fmt(
    policies: List[Path] = typer.Argument(..., help="policy files"),
    check_only: bool = typer.Option(False, "--check", help="only report files that are not formatted"),
) -> None:
    """Rewrite policies in the canonical layout (comments kept).

    With --check: exit 0 when every file is formatted, 1 otherwise."""
    from .formatter import format_policy
    from .loader import read_policy_file

    unformatted = []
    for path in policies:
        original = read_policy_file(path).source.text  # reads, decodes and parses, or fails clearly
        formatted = format_policy(original, str(path))
        if formatted == original:
            continue
        unformatted.append(path)
        if check_only:
            typer.echo(f"{path}: not formatted")
        else:
            _write_output(formatted, path)
            typer.echo(f"{path}: formatted")
    raise _Exit(1 if (check_only and unformatted) else 0)


@app.command("test")
def test_(
    paths: List[Path] = typer.Argument(..., help="test files (*.test.yaml) or folders holding them"),
    coverage: bool = typer.Option(True, "--coverage/--no-coverage",
                                  help="count a rule never expected to pass, fail and be indeterminate as a finding"),
) -> None:
    """Run policy tests: fact fixtures and the outcome expected of each rule.

    Exit 0 all pass, 1 a case fails (or a coverage gap), 2 invalid input."""
    from .testing import coverage_gaps, find_test_files, run_test_file

    catalogue = _fact_catalogue()
    files = find_test_files(paths)
    if not files:
        _fail(f"{', '.join(map(str, paths))}: no *.test.yaml files")
    failed = gaps = cases = 0
    # Coverage is the policy's: the cases of every test file that targets it count.
    covered: dict[tuple, tuple[list[Path], dict[str, set[str]]]] = {}
    for path in files:
        result = run_test_file(path, catalogue)
        key = (result.policy.id, result.policy.version, result.policy.digest)
        paths_of, seen = covered.setdefault(key, ([], {}))
        paths_of.append(path)
        for rule, outcomes in result.coverage.items():
            seen.setdefault(rule, set()).update(outcomes)
        for case in result.cases:
            cases += 1
            if case.ok:
                typer.echo(f"ok    {path}:{case.line}  {case.name}")
            else:
                failed += 1
                typer.echo(f"FAIL  {path}:{case.line}  {case.name}")
                for f in case.failures:
                    typer.echo(f"        {f}")
    if coverage:
        for paths_of, seen in covered.values():
            for gap in coverage_gaps(seen):
                gaps += 1
                typer.echo(f"gap   {', '.join(map(str, paths_of))}: {gap}")
    typer.echo(f"{cases - failed} of {cases} cases pass" + (f"; {gaps} coverage gap{'s' * (gaps != 1)}" if gaps else ""))
    raise _Exit(1 if failed or gaps else 0)


@app.command()
def render(
    policy: Path = typer.Argument(..., help="policy file"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="write the document here"),
) -> None:
    """The policy as the criteria document people read (Markdown)."""
    from .render import render_policy

    _write_output(render_policy(_load_policy(policy), _fact_catalogue()), output, [policy])


@app.command()
def diff(
    sheets: List[Path] = typer.Argument(..., help="fact sheets (.json) or folders holding them"),
    old: Path = typer.Option(..., "--old", help="the policy version before"),
    new: Path = typer.Option(..., "--new", help="the policy version after"),
    set_old: List[str] = typer.Option([], "--set-old", help="override a parameter of the old version"),
    set_new: List[str] = typer.Option([], "--set-new", help="override a parameter of the new version"),
    format: str = typer.Option("table", "--format", "-f", help="table, json or markdown"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="write the diff here"),
    every_change: bool = typer.Option(False, "--every-change",
                                      help="also list sheets whose verdict stays but a rule's outcome changes"),
) -> None:
    """Verdicts that change between two policy versions over many fact sheets, and why."""
    from .diff import render_diff_markdown, render_diff_table
    from .diff import diff_verdicts as _diff
    from .evaluator import prepare_policy
    from .facts import FACTS_SCHEMA_ID, read_json, validate_fact_sheet

    if format not in ("table", "json", "markdown"):
        _fail(f"--format `{format}`: choose one of table, json, markdown")
    catalogue = _fact_catalogue()
    before, after = _load_policy(old), _load_policy(new)
    old_program = prepare_policy(before, _parse_sets(set_old, before, "--set-old"))
    new_program = prepare_policy(after, _parse_sets(set_new, after, "--set-new"))
    # Each file once, however often it is named; in a folder, never the diff this run
    # writes (an earlier run may have left it among the sheets).
    written = os.path.realpath(output) if output is not None else None
    files: list[Path] = []
    seen: set[str] = set()
    for p in sheets:
        for f in sorted(p.rglob("*.json")) if p.is_dir() else [p]:
            real = os.path.realpath(f)
            if real not in seen and not (real == written and p.is_dir()):
                seen.add(real)
                files.append(f)
    if not files:
        _fail(f"{', '.join(map(str, sheets))}: no fact sheets (*.json) to compare")
    named = {os.path.realpath(p) for p in sheets if not p.is_dir()}
    skipped: list[tuple[Path, Any]] = []

    def fact_sheets():
        # A folder may keep other JSON beside its sheets (reports, earlier diffs, model
        # configs): skipped, and said; a file named on the command line must be a sheet.
        for f in files:
            data = read_json(f, "fact sheet")
            schema = data.get("schema") if isinstance(data, dict) else None
            if os.path.realpath(f) not in named and schema != FACTS_SCHEMA_ID:
                skipped.append((f, schema))
                continue
            yield validate_fact_sheet(data, str(f), catalogue)

    result = _diff(old_program, new_program, fact_sheets(), every_change)
    if skipped:
        first, schema = skipped[0]
        what = f"schema `{schema}`" if isinstance(schema, str) else "no fact sheet schema"
        typer.echo(f"note: skipped {len(skipped)} JSON file{'s' * (len(skipped) != 1)} that "
                   f"{'are' if len(skipped) != 1 else 'is'} not a fact sheet (first: {first}, {what})", err=True)
    if not result["summary"]["sheets"]:
        _fail(f"{', '.join(map(str, sheets))}: no fact sheets to compare")
    inputs = [old, new, *files]
    if format == "json":
        _write_output(_dump_json(result), output, inputs)
    elif format == "markdown":
        _write_output(render_diff_markdown(result), output, inputs)
    else:
        _write_table(render_diff_table, result, output, inputs)


@app.command()
def detect(
    model: Path = typer.Argument(..., help="model folder"),
    catalog: Optional[Path] = typer.Option(None, "--catalog", help="reference catalogue (or $ORIGINALITY_CATALOG)"),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="manifest, if not in the model folder"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="write the fact sheet here"),
) -> None:
    """Run the detectors on a model folder and write its fact sheet."""
    data = _detect(model, _catalog_dir(catalog), manifest, progress=True)
    from .facts import validate_fact_sheet  # after detection, which starts reading at once

    validate_fact_sheet(data, f"{model} (detected)", _fact_catalogue())
    _write_output(_dump_json(data), output, [model, manifest, _catalog_dir(catalog)])


@app.command()
def init(
    template: Path = typer.Argument(..., help="a model folder of the architecture: tensor names, shapes, dtypes"),
    seed: int = typer.Option(..., "--seed", help="the seed to commit to, 0 or above"),
    std: float = typer.Option(..., "--std", help="standard deviation of the random weights, e.g. 0.02"),
    output: Path = typer.Option(..., "--output", "-o", help="the step-0 folder to write, e.g. checkpoints/step-0"),
    commitment: Optional[Path] = typer.Option(None, "--commitment", help="write the commitment here, not to stdout"),
) -> None:
    """Write step-0 weights that anyone can regenerate from the seed (recipe originality/1),
    and the commitment to publish before training."""
    import shutil

    from detectors.step0 import write_step0

    if commitment is not None:
        _output_target(commitment)  # a commitment that cannot be written stops before step 0 is
    promise = write_step0(template, output, seed, std)
    try:
        _write_output(_dump_json(promise), commitment)
    except BaseException:  # step 0 without its commitment is of no use: nothing is left
        shutil.rmtree(output, ignore_errors=True)
        raise
    if commitment is not None:
        typer.echo(f"step 0 in {output}; commitment in {commitment}")


@catalog_app.command("add")
def catalog_add(
    path: Path = typer.Argument(..., help="the reference model's folder"),
    id: str = typer.Option(..., "--id", help="the reference's id in the catalogue"),
    origin: str = typer.Option(..., "--origin", help="two-letter country code of its origin"),
    organisation: Optional[str] = typer.Option(None, "--organisation", help="who published it"),
    license: Optional[str] = typer.Option(None, "--license", help="its weights' licence"),
    component: List[str] = typer.Option([], "--component", help="NAME=PREFIX: fingerprint only these parts"),
    catalog: Optional[Path] = typer.Option(None, "--catalog", help="catalogue folder (or $ORIGINALITY_CATALOG)"),
    replace: bool = typer.Option(False, "--replace", help="replace a reference with the same id"),
) -> None:
    """Fingerprint a reference model (or some of its components) into the catalogue."""
    from detectors.catalog import add_reference

    folder = _catalog_dir(catalog)
    if folder is None:
        _fail("no catalogue: pass --catalog DIR or set ORIGINALITY_CATALOG")
    components = {}
    for pair in component:
        name, sep, prefix = pair.partition("=")
        if not sep or not name or not prefix:
            _fail(f"--component `{pair}`: write it as NAME=PREFIX, e.g. `vision_encoder=visual.`")
        if name in components:
            _fail(f"--component `{pair}`: `{name}` is already given as `{components[name]}`")
        components[name] = prefix
    for option, value in (("--organisation", organisation), ("--license", license)):
        if value is not None and not value.strip():
            _fail(f"{option}: an empty text; leave the option out when it is not known")
    ref = add_reference(path, id=id, origin=origin, organisation=organisation, license=license,
                        components=components or None, catalog=folder, replace=replace)
    typer.echo(f"added `{ref.id}` ({ref.origin}) to {folder}")


@catalog_app.command("list")
def catalog_list(
    catalog: Optional[Path] = typer.Option(None, "--catalog", help="catalogue folder (or $ORIGINALITY_CATALOG)"),
    format: str = typer.Option("table", "--format", "-f", help="table or json"),
) -> None:
    """What the catalogue holds."""
    from detectors.catalog import list_references

    folder = _catalog_dir(catalog)
    if folder is None:
        _fail("no catalogue: pass --catalog DIR or set ORIGINALITY_CATALOG")
    refs = list_references(folder)
    if format == "json":
        typer.echo(_dump_json(refs), nl=False)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from .diagnostics import printable

    def cell(text: str) -> str:  # as written: no markup, no control characters
        return escape(printable(text))

    table = Table()
    for col in ("id", "origin", "organisation", "license", "components", "fingerprint"):
        table.add_column(col)
    for r in refs:
        parts = ", ".join(f"{k}={v}" for k, v in sorted((r.get("components") or {}).items())) or "(all)"
        table.add_row(cell(r["id"]), cell(r["origin"]), cell(r.get("organisation") or ""),
                      cell(r.get("license") or ""), cell(parts), f"{r['bytes'] / 1024:.1f} KiB")
    Console().print(table)


@app.command()
def demo(
    output: Path = typer.Option(Path("demo-output"), "--output", "-o", help="folder for the demo's files"),
) -> None:
    """The main job on generated examples: catalogue, detect, check under both policy
    versions, diff the verdicts, render the criteria."""
    from rich.console import Console

    from .demo import run_demo

    run_demo(output, Console())


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point: run the app; bad input of any kind is one line on stderr, exit 2."""
    try:
        returned = app(args=argv, prog_name="originality", standalone_mode=False)
        # (the argument parser returns 130 when it meets an interrupt of its own)
        code = returned if isinstance(returned, int) and not isinstance(returned, bool) else 0
        if code == EXIT_INTERRUPTED:
            typer.echo("error: interrupted", err=True)
    except _Exit as stop:
        code = stop.code
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        code = EXIT_INTERRUPTED
    except PolicyError as err:
        errors = [d for d in err.diagnostics if d.severity == "error"] or err.diagnostics
        first = errors[0]
        more = len(errors) - 1
        typer.echo("error: " + first.error_line() + (f"; and {more} more (run `originality lint`)" if more > 0 else ""),
                   err=True)
        code = EXIT_INVALID
    except InputError as err:
        typer.echo(f"error: {err}", err=True)
        code = EXIT_INVALID
    except Exception as err:  # detectors' input errors, click's usage errors, the rest
        code = _report_other(err)
    sys.stdout.flush()
    raise SystemExit(code)


def run() -> None:
    """The `originality` program (the console script and `python -m engine`): `main`, in
    a process that ends when it returns."""
    signal.signal(signal.SIGTERM, _terminated)
    try:
        main()
    finally:
        # What is alive now stays alive until exit. Frozen, it is out of the collector's
        # reach, so shutdown does not walk every imported module's objects once more (about
        # 50 ms of each command). Only here: an in-process caller of `main` keeps its heap.
        gc.freeze()


def _terminated(signum, frame) -> None:
    """SIGTERM: unwind like an interrupt, so no temporary file is left behind."""
    raise KeyboardInterrupt


def _report_other(err: Exception) -> int:
    if isinstance(err, typer.Exit):
        return err.exit_code
    if isinstance(err, typer.Abort):
        typer.echo("error: aborted", err=True)
        return EXIT_INVALID
    if isinstance(err, typer.TyperException) and hasattr(err, "format_message"):
        # A usage error from the argument parser: one line, with the command it concerns.
        ctx = getattr(err, "ctx", None)
        where = f"{ctx.command_path}: " if ctx is not None else ""
        message = " ".join(err.format_message().split())
        typer.echo(f"error: {where}{message[:1].lower()}{message[1:]} (see `--help`)", err=True)
        return EXIT_INVALID
    if _is_detector_input_error(err):
        typer.echo(f"error: {err}", err=True)
        return EXIT_INVALID
    if os.environ.get("ORIGINALITY_DEBUG"):
        raise err
    typer.echo(f"error: internal error ({type(err).__name__}: {err}); set ORIGINALITY_DEBUG=1 for details",
               err=True)
    return EXIT_INVALID


def _is_detector_input_error(err: Exception) -> bool:
    """The detectors' own errors: a malformed model file, or a broken plug-in."""
    try:
        from detectors.base import InputError as ModelInputError
        from detectors.registry import DetectorError
    except ImportError:
        return False
    return isinstance(err, (ModelInputError, DetectorError))
