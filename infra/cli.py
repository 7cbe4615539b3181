"""`mlkit`: validate stacks and check a machine's prerequisites, without the Pulumi CLI or credentials.

Exit codes: 0 ok, 1 a failed check or invalid stack, 2 a usage error.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from infra import doctor as doctor_checks
from infra.stack import StackConfig, StackConfigError, load_stack_file, shown_problems, stack_names

app = typer.Typer(
    name="mlkit",
    help="ML platform kit: one program, one config schema, any cloud.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# soft wrap: long messages stay on one line for grep and CI logs; no emoji: `mlkit:cd:` is a key, not a disc
out = Console(soft_wrap=True, emoji=False)

StackArg = Annotated[str, typer.Argument(help="a stack name (local, aws, ...) or a path to a stack file")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]


@app.command()
def validate(
    stacks: Annotated[
        list[str] | None, typer.Argument(help="stack names or files; default: every stack in stacks/")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate stack files against the schema; print every problem with its key path."""
    results = {}
    for stack in stacks or stack_names():
        try:
            config = load_stack_file(stack)
            results[stack] = {"ok": True, "target": config.target.type, "problems": []}
        except StackConfigError as e:
            # At most MAX_SHOWN_PROBLEMS, then "+N more": a file of 100k bad values must not print 100k lines.
            results[stack] = {
                "ok": False,
                "source": e.source,
                "count": len(e.problems),
                "problems": shown_problems(e.problems),
            }
    if as_json:
        print(json.dumps(results, indent=2))
    else:
        for stack, result in results.items():
            if result["ok"]:
                out.print(f"[green]ok[/]      {escape(stack)} (target {result['target']})")
            else:
                out.print(f"[red]invalid[/] {escape(result['source'])}: {result['count']} problem(s)")
                for problem in result["problems"]:
                    out.print(f"  - {problem}", markup=False, highlight=False)
    if not all(r["ok"] for r in results.values()):
        raise typer.Exit(1)


@app.command()
def doctor(
    stack: Annotated[str | None, typer.Argument(help="stack to check for; default: common tools only")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the tools and credentials `pulumi up` needs on this machine; say how to get what is missing."""
    config: StackConfig | None = None
    if stack:
        try:
            config = load_stack_file(stack)
        except StackConfigError as e:
            out.print(str(e), markup=False, highlight=False)
            raise typer.Exit(1) from None
    checks = doctor_checks.run_checks(config)
    if as_json:
        print(json.dumps([c.__dict__ for c in checks], indent=2))
    else:
        table = Table(title=f"prerequisites for {'stack ' + stack if stack else 'any stack'}", show_lines=False)
        for column in ("check", "status", "detail"):
            table.add_column(column, overflow="fold")
        for c in checks:
            table.add_row(c.name, "[green]ok[/]" if c.ok else "[red]missing[/]", c.detail)
        out.print(table)
        missing = [c.name for c in checks if not c.ok]
        if missing:
            out.print(f"[red]missing:[/] {', '.join(missing)}")
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


@app.command()
def stacks(as_json: JsonOpt = False) -> None:
    """List the stacks in stacks/ with their targets."""
    rows = []
    for name in stack_names():
        try:
            rows.append({"stack": name, "target": load_stack_file(name).target.type, "valid": True})
        except StackConfigError:
            rows.append({"stack": name, "target": None, "valid": False})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        out.print(
            f"{escape(row['stack']):<10} {row['target'] or '-':<9} {'valid' if row['valid'] else '[red]invalid[/] (run mlkit validate)'}"
        )


@app.command()
def schema() -> None:
    """Print the JSON schema of the `mlkit:` stack config (for editor completion and CI checks)."""
    print(json.dumps(StackConfig.model_json_schema(by_alias=True), indent=2))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
