"""The `fwbench` command: one entry point for the pipeline and its tools.

Each subcommand is one row of COMMANDS: a module whose `main(argv)` does the work, a line of help and
an example. Adding a command is adding a row.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import re
import sys
from typing import NamedTuple


class Command(NamedTuple):
    module: str  # has main(argv: list[str] | None) -> int | None
    summary: str
    example: str


COMMANDS: dict[str, Command] = {
    "run": Command(
        "workflow.scripts.run_pipeline",
        "run the pipeline (Snakemake, default profile; other arguments go to snakemake)",
        "fwbench run --experiments moons-mlp --backends numpy torch --cores 2",
    ),
    "compare": Command(
        "reports.compare_cli",
        "what moved between two results trees: a table, --json, exit 1 on a slowdown",
        "fwbench compare results /path/to/other/results --threshold 1.2",
    ),
    "check": Command(
        "reports.check",
        "the regression check against reports/baselines.json (JUnit XML, exit 1 on failure)",
        "fwbench check --results results --baselines reports/baselines.json",
    ),
    "baseline": Command(
        "reports.baselines",
        "refresh reports/baselines.json from a clean CI-config run",
        "fwbench baseline --results results --out reports/baselines.json",
    ),
    "report": Command(
        "reports.html",
        "write the HTML report (or, with --against, the comparison page)",
        "fwbench report --results results",
    ),
    "microbench": Command(
        "workflow.scripts.microbench",
        "time each backend in its own process, as a pipeline job does",
        "fwbench microbench --backends torch jax fused --threads 1 --repeats 9",
    ),
    "history": Command(
        "workflow.lib.history",
        "every commit's figures from the MLflow store: a table per series, change points, --json",
        "fwbench history --results results --figure train_samples_per_s",
    ),
    "ui": Command(
        "workflow.scripts.mlflow_ui",
        "the MLflow UI on the run's store (a server's address for a tracking server)",
        "fwbench ui --results results --port 5000",
    ),
    "gc": Command(
        "workflow.scripts.mlflow_gc",
        "list the store's soft-deleted runs; with --yes purge them and their artifacts (mlflow gc)",
        "fwbench gc --results results --yes",
    ),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {c.summary}" for name, c in COMMANDS.items())
    examples = "\n".join(f"  {c.example}" for c in COMMANDS.values())
    return (
        "usage: fwbench COMMAND [ARGS...]\n\nReproducible benchmark of deep-learning frameworks.\n\n"
        f"commands:\n{rows}\n\nexamples:\n{examples}\n\n`fwbench COMMAND --help` shows a command's options."
    )


def _help(name: str, command: Command, main) -> int:
    """The module's own help, named `fwbench NAME`, with the example under it."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main(["--help"])
    # The module's prog (`python -m MODULE`, `MODULE.py` or already `fwbench NAME`) becomes `fwbench NAME`.
    text = re.sub(rf"^usage: (?:fwbench {name}\b|\S+(?: -m \S+)?)", f"usage: fwbench {name}", out.getvalue(), count=1)
    print(f"{text.rstrip()}\n\nexample:\n  {command.example}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"fwbench: unknown command {name!r}; one of: {', '.join(COMMANDS)} (fwbench --help)", file=sys.stderr)
        return 2
    command = COMMANDS[name]
    module_main = importlib.import_module(command.module).main
    if "-h" in rest or "--help" in rest:
        return _help(name, command, module_main)
    try:
        code = module_main(rest)
    except SystemExit as e:  # argparse's errors and modules that exit
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
