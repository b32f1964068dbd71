"""``tracegrade rubrics``."""

from __future__ import annotations

import click
from rich.table import Table

from tracegrade.cli._common import AppContext, fail, format_option, pass_app, print_json
from tracegrade.llm import RubricError, shipped_rubric, shipped_rubrics


@click.command("rubrics")
@click.argument("name", required=False)
@format_option
@pass_app
def rubrics_command(app: AppContext, name: str | None, output_format: str) -> None:
    """List the LLM-judge rubrics tracegrade ships, or print one to copy and edit.

    An llm_judge grader uses a shipped rubric with `template: NAME`. To change
    one, save it (`tracegrade rubrics grounded > rubrics/grounded.j2`), edit it,
    and point the grader's `rubric_file:` at the copy.
    """
    if name is not None:
        try:
            source = shipped_rubric(name)
        except RubricError as exc:
            fail(str(exc))
        if output_format == "json":
            print_json({"name": name, "template": source})
        else:
            click.echo(source, nl=False)
        return
    rubrics = shipped_rubrics()
    if output_format == "json":
        print_json([{"name": key, "description": text} for key, text in rubrics.items()])
        return
    table = Table(title="Shipped rubrics (use as `template: NAME`)")
    table.add_column("name")
    table.add_column("what it checks")
    for key, text in rubrics.items():
        table.add_row(key, text)
    app.console.print(table)
