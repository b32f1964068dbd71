"""Which module defines each top-level command, and its help's first paragraph.

Generated from the commands themselves by ``make docs`` (a test fails when it is stale), so that
``tracegrade`` imports a command's module, and the libraries it needs, only to run it.
"""
# ruff: noqa: E501

# [[[cog
# from docs.cli_reference import command_index
# cog.out(command_index())
# ]]]
COMMANDS: dict[str, tuple[str, str]] = {
    'calibrate': ('tracegrade.cli._calibrate',
        'Check graders against human labels: kappa, TPR, TNR, and corrected pass rates.'),
    'dataset': ('tracegrade.cli._dataset',
        'Golden datasets: create, promote spans into, list, export, import, push, check staleness.'),
    'demo': ('tracegrade.cli._demo',
        'Run the whole flow on bundled traces of a customer-support agent.'),
    'deploy': ('tracegrade.cli._releases',
        'Record deploys, so spans are assigned to releases by their start time.'),
    'drift': ('tracegrade.cli._drift',
        'How well DATASET covers production traffic, and which topics it misses.'),
    'export': ('tracegrade.cli._export',
        'Send verdicts back to Langfuse (as scores) and Braintrust (as feedback).'),
    'grade': ('tracegrade.cli._grade',
        'Run the configured graders on spans that lack a verdict from their current version.'),
    'import': ('tracegrade.cli._data',
        'Import trace files: OTLP JSON, OTLP protobuf, or tracegrade JSONL (.gz too).'),
    'init': ('tracegrade.cli._init',
        'Write a commented tracegrade.yaml: a starter, or graders proposed from your code.'),
    'labels': ('tracegrade.cli._labels',
        'Human labels: import them from files or sources, and export spans worth labeling next.'),
    'pull': ('tracegrade.cli._pull',
        'Pull new spans from the configured Langfuse and Braintrust sources.'),
    'regressions': ('tracegrade.cli._report',
        'Which grader got worse in the candidate release than in the baseline.'),
    'releases': ('tracegrade.cli._releases',
        'Releases with their span counts, graded spans, time ranges and deploy markers.'),
    'replay': ('tracegrade.cli._replay',
        "Run DATASET's inputs through your application and grade the outputs before a deploy."),
    'report': ('tracegrade.cli._report',
        'Pass rate per release × grader with counts and 95% Wilson intervals.'),
    'rubrics': ('tracegrade.cli._rubrics',
        'List the LLM-judge rubrics tracegrade ships, or print one to copy and edit.'),
    'runs': ('tracegrade.cli._runs',
        'Recent grade, pull and replay runs: when, how long, how they ended, what they wrote.'),
    'serve': ('tracegrade.cli._serve',
        'Receive spans live over OTLP/HTTP and write them to the store.'),
    'stats': ('tracegrade.cli._data',
        'Spans in the store per release, kind and source, with time ranges.'),
    'watch': ('tracegrade.cli._watch',
        'Pull, grade and look for regressions every few minutes, alerting once per finding.'),
}
# [[[end]]]
