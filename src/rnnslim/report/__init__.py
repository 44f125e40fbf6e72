"""Reports of pipeline runs: Markdown for people, JSON for machines, an accuracy-size plot."""

from rnnslim.report.writer import report_data, write_report

__all__ = ["report_data", "write_report"]
