"""How much of its fine-tuning a setting gets in a budgeted search
(:mod:`fairtune.selection.halving`).

A :class:`StepPlan` set on a method scales the epochs of each of its phases by
``share`` (at least one epoch; a phase of 0 epochs stays skipped) and records
every phase's full epochs and rows per epoch, so the search knows what the
setting would pass at any share before training it there. A share of 0 trains
nothing: it only plans.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

ETA = 3
"""Each rung of a successive halving keeps the best 1/ETA of its settings and gives them
ETA times the share."""


@dataclass
class StepPlan:
    """The share of each phase's epochs a setting trains, and the phases it planned."""

    share: float
    phases: list[tuple[int, int]] = field(default_factory=list)
    """(full epochs, rows per epoch) of each phase run, in order."""

    def epochs(self, full: int, rows: int) -> int:
        """The epochs a phase of ``full`` epochs over ``rows`` rows trains; recorded."""
        self.phases.append((full, rows))
        return scaled(full, self.share)

    def rows_at(self, share: float) -> int:
        """Rows the planned phases pass at ``share``."""
        return sum(scaled(full, share) * rows for full, rows in self.phases)


def scaled(full: int, share: float) -> int:
    """``full`` epochs at ``share``: at least one unless ``full`` or ``share`` is 0."""
    if full == 0 or share == 0:
        return 0
    return max(1, math.ceil(full * share - 1e-9))


def rung_sizes(n: int) -> list[int]:
    """Settings per rung of a successive halving over ``n``: n, then 1/:data:`ETA` of the one
    before, down to fewer than ETA (a budget may end it sooner)."""
    counts = [n]
    while counts[-1] >= ETA:
        counts.append(math.ceil(counts[-1] / ETA))
    return counts if n else []
