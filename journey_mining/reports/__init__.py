"""The HTML report marketing reads without help.

`data.report_data` reads the marts once; `figures` are pure builders (frame in,
figure out); `headlines` writes the sentence at the top of each section;
`html.write_report` is the one writer (a self-contained page, CSV lists, PNGs).
"""

from journey_mining.reports.data import ReportData, report_data
from journey_mining.reports.figures import *  # noqa: F403 - the builders are the API
from journey_mining.reports.figures import __all__ as _figures
from journey_mining.reports.format import FUNNEL, LABEL, MIN_COHORT, duration, pct
from journey_mining.reports.headlines import headlines
from journey_mining.reports.html import (
    GLOSSARY,
    STATIC_IMAGES,
    find_chromium,
    write_report,
    write_static_images,
)

__all__ = [
    "FUNNEL", "GLOSSARY", "LABEL", "MIN_COHORT", "STATIC_IMAGES", "ReportData", "duration",
    "find_chromium", "headlines", "pct", "report_data", "write_report",
    "write_static_images", *_figures,
]
