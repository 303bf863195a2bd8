"""Reports: the flag CSV, the self-contained HTML report, its index page and evidence export.

Reads the store only and never recomputes a score.
"""

from reports.csv_export import CSV_COLUMNS, CSV_ENCODING
from reports.data import ReportError
from reports.evidence import UnknownDetectionError, export_evidence
from reports.report import ReportResult, write_index, write_report

__all__ = [
    "CSV_COLUMNS",
    "CSV_ENCODING",
    "ReportError",
    "ReportResult",
    "UnknownDetectionError",
    "export_evidence",
    "write_index",
    "write_report",
]
