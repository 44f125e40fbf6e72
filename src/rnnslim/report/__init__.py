"""Reports of pipeline runs: Markdown and a self-contained HTML page for people, JSON for
machines, an accuracy-size plot; pareto_figure draws a search's candidates for the page."""

from rnnslim.report.figures import pareto_figure
from rnnslim.report.html import render_html, write_html_report
from rnnslim.report.writer import report_data, write_report

__all__ = ["pareto_figure", "render_html", "report_data", "write_html_report", "write_report"]
