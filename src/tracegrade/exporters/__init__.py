"""Results back out: verdicts to Langfuse scores / Braintrust feedback, datasets, and labels in.

* :func:`export_verdicts` — pass/fail verdicts to the source their span came from;
* :func:`push_dataset` — a golden dataset to Langfuse or Braintrust;
* :func:`import_remote_labels` — Langfuse annotation scores / Braintrust human review as labels.
"""

from tracegrade.exporters._common import ExportError, stable_id
from tracegrade.exporters._datasets import DatasetPush, push_dataset
from tracegrade.exporters._labels import LabelImport, binary_label, import_remote_labels
from tracegrade.exporters._verdicts import (
    DestinationExport,
    ExportSummary,
    braintrust_feedback,
    export_verdicts,
    langfuse_score,
)

__all__ = [
    "DatasetPush",
    "DestinationExport",
    "ExportError",
    "ExportSummary",
    "LabelImport",
    "binary_label",
    "braintrust_feedback",
    "export_verdicts",
    "import_remote_labels",
    "langfuse_score",
    "push_dataset",
    "stable_id",
]
