"""report.md: a comparison that reads on its own, without the terminal's scrollback.

It holds the settings, and per test set the headline table, the plot, the
selection sentences and the notes, then every metric in one table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from fairtune.selection.results import SELECTED, ResultRow
from fairtune.selection.search import CompareSettings

REPORT_FILE = "report.md"


@dataclass(frozen=True)
class ReportPart:
    """What report.md shows of one test set."""

    name: str | None  # the test set's name; None for a comparison on one test set
    headline: Table
    full: Table
    plot: str  # the plot's file name, beside report.md
    notes: list[str]  # the selection sentences and the notes, as the terminal prints them


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def table_markdown(table: Table) -> str:
    """A rich table as a Markdown table, its caption as a paragraph under it."""
    columns = table.columns
    lines = [
        "| " + " | ".join(_cell(c.header) for c in columns) + " |",
        "| " + " | ".join("---:" if c.justify == "right" else "---" for c in columns) + " |",
    ]
    for values in zip(*(list(c.cells) for c in columns), strict=True):
        lines.append("| " + " | ".join(_cell(v) for v in values) + " |")
    if table.caption:
        lines += ["", _cell(table.caption).replace("\\|", "|")]
    return "\n".join(lines)


def settings_lines(settings: CompareSettings, extra: dict[str, Any]) -> list[str]:
    """The comparison's settings in words: what was compared, how chosen, how measured."""
    lines = [f"{extra['description']}"] if "description" in extra else []
    lines += [f"model: `{extra['model']}`"] if "model" in extra else []
    lines += [f"test sets: {extra['tests']}"] if "tests" in extra else []
    lines += [
        f"methods: {', '.join(settings.methods)}; seeds: {settings.seeds}",
        "settings per method: "
        + (
            f"searched ({settings.tuner}); {settings.selection_rule().text()}"
            if settings.grid
            else "the defaults (no search)"
        ),
        f"threshold t: {settings.threshold_text()}",
        f"held out for thresholds and selection: {settings.holdout:.0%} of the external set; "
        f"bootstrap resamples on test: {settings.n_boot}",
    ]
    lines += [f"{m} set to {v}" for m, v in settings.overrides.items()]
    lines += [f"{m} searched {settings.grid_of(m)}" for m in settings.grids if settings.grid]
    return lines


def chosen_lines(rows: Sequence[ResultRow]) -> list[str]:
    """Per method and seed, the setting the search kept."""
    return [
        f"{r.method} (seed {r.seed}) kept {r.selection.chosen}"
        for r in rows
        if r.method not in ("baseline", SELECTED)
        and r.selection.chosen  # {}: the defaults, no search
        and not r.needs_sensitive_attribute_at_prediction
    ]


def report_markdown(title: str, settings: Sequence[str], parts: Sequence[ReportPart]) -> str:
    """The whole of report.md."""
    out = [f"# {title}", "", "## Settings", ""]
    out += [f"- {line}" for line in settings]
    for part in parts:
        where = "" if part.name is None else f" (test set {part.name})"
        out += ["", f"## Headline{where}", "", table_markdown(part.headline)]
        out += ["", f"![EOdds against AUC{where}]({part.plot})"]
        if part.notes:
            out += ["", f"## Selection and notes{where}", ""]
            out += [f"- {_cell(note).replace(chr(92) + '|', '|')}" for note in part.notes]
        out += ["", f"## Every metric{where}", "", table_markdown(part.full)]
    return "\n".join(out) + "\n"
