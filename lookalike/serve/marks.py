"""The duplicate-review marks the server records: :mod:`lookalike.marks` (outside the web
package, so that ``sort --from-marks`` reads them without the web stack installed)."""

from __future__ import annotations

from ..marks import DECISIONS, GROUP_DECISIONS, MarkRecord, MarkStore, ReviewRun, spreadsheet_safe

__all__ = ["DECISIONS", "GROUP_DECISIONS", "MarkRecord", "MarkStore", "ReviewRun",
           "spreadsheet_safe"]
