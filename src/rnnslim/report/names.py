"""The file names of a report inside a run directory (writer.py writes them, rundir.py deletes them)."""

REPORT_MD, REPORT_JSON, REPORT_HTML, PLOT_PNG = "report.md", "report.json", "report.html", "accuracy_vs_size.png"
MEASURE_JSON = "measure.json"  # `rnnslim measure RUN_DIR --json > RUN_DIR/measure.json`: baselines in report.html
