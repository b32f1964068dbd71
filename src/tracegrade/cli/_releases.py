"""``tracegrade deploy mark`` and ``tracegrade releases``."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from tracegrade.cli._common import (
    AppContext,
    fail,
    format_option,
    pass_app,
    print_json,
    require_environment,
)
from tracegrade.releases import DeployMarkerError, list_releases, mark_deploy
from tracegrade.reports.terminal import releases_table


def parse_time(value: str) -> datetime:
    """An ISO 8601 time; without a zone it is taken as UTC."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time (e.g. 2026-11-08T14:30:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _deploy_group() -> click.Group:
    # Built in a function so `mark` is only a subcommand (the CLI registers module-level
    # commands at the top level).
    @click.group("deploy")
    def deploy() -> None:
        """Record deploys, so spans are assigned to releases by their start time.

        Used when `analysis.releases: deploy_markers` is set in tracegrade.yaml
        (for spans that carry no release of their own).
        """

    @deploy.command("mark")
    @click.argument("name")
    @click.option("--at", "at", metavar="TIME",
                  help="When it was deployed, ISO 8601 (no zone: UTC). [default: now]")
    @click.option("--environment", help="The environment deployed to. [default: all of them]")
    @format_option
    @pass_app
    def mark(app: AppContext, name: str, at: str | None, environment: str | None,
             output_format: str) -> None:
        """Mark release NAME as deployed: spans that start from then on belong to it.

        Safe to call from CI on every run: marking a release again keeps its
        first time unless --at says otherwise.
        """
        moment = parse_time(at) if at else None
        config = app.config()
        with app.open_store(config) as store:
            try:
                marker, outcome = mark_deploy(store, name, moment, environment)
            except DeployMarkerError as exc:
                fail(str(exc))
        if output_format == "json":
            print_json({**marker.as_dict(), "outcome": outcome})
            return
        where = f" to {marker.environment}" if marker.environment else ""
        verb = {"created": "Marked", "moved": "Moved", "unchanged": "Already marked"}[outcome]
        app.console.print(f"{verb} {marker.name} as deployed{where} at "
                          f"{marker.deployed_at.isoformat()}.", highlight=False)
        if config.analysis.releases != "deploy_markers":
            app.err_console.print("Note: tracegrade.yaml takes releases from a span field; set "
                                  "`analysis: {releases: deploy_markers}` to use markers.")

    return deploy


deploy_group = _deploy_group()


@click.command("releases")
@click.option("--environment", help="Only spans of this environment.")
@format_option
@pass_app
def releases_command(app: AppContext, environment: str | None, output_format: str) -> None:
    """Releases with their span counts, graded spans, time ranges and deploy markers."""
    config = app.config()
    with app.open_store(config, existing=True) as store:
        require_environment(store, environment)
        summaries = list_releases(store, config.analysis.releases, environment)
    if output_format == "json":
        print_json([summary.as_dict() for summary in summaries])
        return
    app.console.print(releases_table(summaries))
