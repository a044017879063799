"""The study behind ``main_report.ipynb``: its analyses write CSVs the notebook reads."""
