"""Time: the --max-minutes allowance of a whole command, and how long a run is expected to take.

A command starts one `Budget` when it starts; every training phase of the command (pretraining,
transfer, each member of an ensemble, the fine-tuning) draws on it, through `share` when phases
split what is left. `fit` ends an epoch early, mid-epoch if need be, when what is left would not
cover the next validation pass plus the scoring that follows training (the test set:
TrainSpec.final_items), so a budgeted command still scores its best checkpoint and writes its
report inside the allowance.

`Pace` measures seconds per training item on a phase's first batches and seconds per scored item
on its validation passes; it gives the expected-time line printed before the bulk of the training
and the reserve the budget keeps for scoring.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

# Scoring an item (forward only, no gradients, bigger batches) costs about this share of training
# on it; used until a validation pass has been timed.
SCORING_SHARE = 1 / 3
# Kept free at the end of the allowance for writing checkpoints and the report.
MARGIN_SECONDS = 10.0


@dataclass(frozen=True)
class Budget:
    """Wall-clock allowance: `end` is a time.monotonic() value, None for no limit."""
    end: float | None = None
    minutes: float | None = None        # what the user asked for, for messages

    @classmethod
    def start(cls, minutes: float | None) -> "Budget":
        """The allowance of a command that starts now (`minutes` None: unlimited)."""
        return cls(None if minutes is None else time.monotonic() + 60.0 * minutes, minutes)

    @property
    def limited(self) -> bool:
        return self.end is not None

    def left(self) -> float:
        """Seconds left (inf without a limit; negative once over)."""
        return math.inf if self.end is None else self.end - time.monotonic()

    def share(self, parts: int, reserve: float = 0.0) -> "Budget":
        """The allowance of the next of `parts` equal phases, keeping `reserve` seconds for what
        follows them all."""
        if self.end is None:
            return self
        now = time.monotonic()
        return Budget(now + max(0.0, self.end - now - reserve) / max(parts, 1), self.minutes)


def minutes_text(seconds: float) -> str:
    """'45 s', '12 min', '2 h 05 min'."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


class Pace:
    """Seconds per training item (timed from the second batch on: the first one pays for warm-up
    and compilation) and per scored item (timed on validation passes)."""

    def __init__(self):
        self.train_seconds = 0.0
        self.train_items = 0
        self.score_per_item: float | None = None

    def add_training(self, seconds: float, items: int) -> None:
        self.train_seconds += seconds
        self.train_items += items

    def add_scoring(self, seconds: float, items: int) -> None:
        if items > 0:
            self.score_per_item = seconds / items

    @property
    def train_per_item(self) -> float | None:
        return self.train_seconds / self.train_items if self.train_items else None

    def scoring(self, items: int) -> float:
        """Expected seconds to score `items` (0 while nothing has been timed)."""
        if self.score_per_item is not None:
            return items * self.score_per_item
        per_item = self.train_per_item
        return 0.0 if per_item is None else items * per_item * SCORING_SHARE

    def reserve(self, eval_items: int, final_items: int) -> float:
        """What a budgeted phase keeps before its end: the next validation, the final scoring."""
        return self.scoring(eval_items + final_items) + MARGIN_SECONDS

    def expected_line(self, epochs_left: int, items_per_epoch: int, eval_items: int,
                      final_items: int, budget: Budget, what: str = "training") -> str:
        """One line: the expected time of the rest of this phase, and what the budget does to it."""
        per_item = self.train_per_item or 0.0
        epoch_seconds = items_per_epoch * per_item + self.scoring(eval_items)
        total = epochs_left * epoch_seconds + self.scoring(final_items)
        line = (f"expected time: about {minutes_text(total)} for {what} ({epochs_left} epoch(s) of "
                f"about {minutes_text(epoch_seconds)}, measured on the first batches)")
        if budget.limited:
            left = budget.left()
            if total <= left:
                line += f"; within the time budget ({minutes_text(left)} left)"
            else:
                fits = max(0.0, (left - self.scoring(final_items) - MARGIN_SECONDS) / epoch_seconds)
                line += (f"; the time budget ({minutes_text(left)} left, --max-minutes) stops it "
                         f"after about {fits:.1f} epoch(s)")
        return line


class Timekeeper:
    """One training phase's use of the clock: times its batches, says once how long the phase is
    expected to take (after MEASURE_SECONDS of batches, or at the end of its first epoch), and
    when the budget says stop."""

    MEASURE_SECONDS = 5.0
    MEASURE_BATCHES = 20

    def __init__(self, budget: Budget, pace: Pace, eval_items: int, final_items: int):
        self.budget, self.pace = budget, pace
        self.eval_items, self.final_items = eval_items, final_items
        self.announced = False
        self.timed_batches = 0
        self.first_batch: tuple[float, int] | None = None  # (seconds, items), warm-up included

    def batch_done(self, seconds: float, items: int) -> None:
        if self.first_batch is None:
            self.first_batch = (seconds, items)
            return
        self.pace.add_training(seconds, items)
        self.timed_batches += 1

    def ready_to_announce(self) -> bool:
        return not self.announced and (self.pace.train_seconds >= self.MEASURE_SECONDS
                                       or self.timed_batches >= self.MEASURE_BATCHES)

    def announce(self, epochs_left: int, items_per_epoch: int) -> str:
        """The expected-time line (the first batch's time when it is all there is)."""
        self.announced = True
        if self.pace.train_items == 0 and self.first_batch is not None:
            self.pace.add_training(*self.first_batch)
        return self.pace.expected_line(epochs_left, items_per_epoch, self.eval_items,
                                       self.final_items, self.budget)

    def out_of_time(self) -> bool:
        """Whether what is left would not cover the next validation and the final scoring."""
        return self.budget.limited and \
            self.budget.left() < self.pace.reserve(self.eval_items, self.final_items)
