"""``fedsearch report``: a self-contained HTML report of a study, with PNG plots."""

from __future__ import annotations

from fedsearch.report._html import write_report
from fedsearch.report._plots import objective_pairs

__all__ = ["objective_pairs", "write_report"]
