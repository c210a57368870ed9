"""The drill report: HTML with inline charts, Markdown, JUnit; defects and re-test plan."""

from gameday.report.build import HTML, JUNIT, MARKDOWN, write_reports

__all__ = ["HTML", "JUNIT", "MARKDOWN", "write_reports"]
