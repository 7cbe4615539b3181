"""`mlkit`: validate stacks and check a machine's prerequisites, without the Pulumi CLI or credentials.

Exit codes: 0 ok, 1 a failed check or invalid stack, 2 a usage error.
"""

from __future__ import annotations

import json
from pathlib import Path
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


@app.command("policy-config")
def policy_config(stack: StackArg) -> None:
    """Print the policy pack's config for STACK (`make policy` passes it to `pulumi preview --policy-pack-config`)."""
    from infra.policies import pack_config  # the pack's SDK only where the pack is asked for

    try:
        config = load_stack_file(stack)
    except StackConfigError as e:
        out.print(str(e), markup=False, highlight=False)
        raise typer.Exit(1) from None
    print(json.dumps(pack_config(config), indent=2))


@app.command()
def schema() -> None:
    """Print the JSON schema of the `mlkit:` stack config (for editor completion and CI checks)."""
    print(json.dumps(StackConfig.model_json_schema(by_alias=True), indent=2))


@app.command()
def verify(
    stack: StackArg,
    team: Annotated[str | None, typer.Option("--team", help="check this team only; default: every team")] = None,
    kubeconfig: Annotated[
        Path | None, typer.Option("--kubeconfig", help="default: the stack's (target existing), else KUBECONFIG")
    ] = None,
    context: Annotated[str | None, typer.Option("--context", help="default: the stack's, else the current one")] = None,
    image: Annotated[
        str | None, typer.Option("--image", help="probe pods' image; default: the kit's mlkit-training in mlkit:images")
    ] = None,
    gpu_image: Annotated[
        str | None, typer.Option("--gpu-image", help="the GPU probe's image (CUDA, torch, python3)")
    ] = None,
    check: Annotated[
        str | None, typer.Option("--check", "-k", help="only checks whose name matches (a pytest -k expression)")
    ] = None,
    pod_timeout: Annotated[float, typer.Option("--pod-timeout", help="seconds a probe pod may take to start")] = 180,
    as_json: JsonOpt = False,
) -> None:
    """Prove a deployed stack works: GPUs, storage and identity, reachability, pod security (docs/verify.md).

    Exit codes: 0 every check passed (or is not verifiable on this cluster), 1 a check failed, 2 bad input.
    """
    from infra import verify as suite  # pytest and testinfra load for this command only
    from infra.verify import report

    try:
        deployment = suite.resolve(
            stack,
            team=team,
            kubeconfig=kubeconfig,
            context=context,
            probe_image=image,
            gpu_image=gpu_image or suite.DEFAULT_GPU_IMAGE,
            pod_timeout=pod_timeout,
        )
    except suite.BadInput as e:
        typer.echo(f"mlkit verify: {e}", err=True)
        raise typer.Exit(2) from None
    try:
        results = suite.run_checks(deployment, select=check)
    except suite.SuiteError as e:
        typer.echo(f"mlkit verify: {e}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        print(report.to_json(results, deployment.stack))
    else:
        out.print(report.table(results, f"readiness of stack {deployment.stack} ({deployment.server})"))
        out.print(report.summary_line(results), markup=False, highlight=False)
    raise typer.Exit(report.exit_code(results))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
