"""Reporting: the tables, the DataFrame, report.md, the files of a comparison and the plot.
See ARCHITECTURE.md."""
