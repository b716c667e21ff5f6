"""HTML reports: self-contained pages (inline CSS and SVG) for curators and users."""

from .risk_report import render_risk_report, write_risk_report

__all__ = ["render_risk_report", "write_risk_report"]
