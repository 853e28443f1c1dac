"""The public leaderboard's mechanism: the Ladder (Blum & Hardt, "The Ladder: A Reliable
Leaderboard for Machine Learning Competitions", ICML 2015). Plain Python.

A team's board score moves only when a submission beats the team's best released score by
more than the step η, and then to the new score rounded to a multiple of η; otherwise the
board repeats the old score. Submitting many slightly different guesses and keeping those
that scored well (adaptive overfitting to the public test set) learns almost nothing from it,
because almost every answer is "no better". Blum and Hardt bound the leaderboard's error by
O((log(k·n))^(1/3) / n^(1/3)) for k submissions on n test rows, against O(sqrt(k / n)) for
exact scores. The private board, on rows no submission was scored on before the close, is
the final ranking.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Ladder:
    step: float  # η, in the metric's units
    higher_is_better: bool

    def __post_init__(self) -> None:
        if not (0 < self.step < 1) or not math.isfinite(self.step):
            raise ValueError(f"ladder_step: must be in (0, 1), got {self.step}")

    def release(self, best: float | None, score: float) -> float:
        """The team's new board score, after a submission scoring `score` (exactly) when its
        board score was `best` (None before its first)."""
        if not math.isfinite(score):
            return best if best is not None else self.rounded(score)
        if best is None or self._gain(best, score) > self.step:
            return self.rounded(score)
        return best

    def rounded(self, score: float) -> float:
        if not math.isfinite(score):
            return score
        return round(round(score / self.step) * self.step, 10)

    def _gain(self, best: float, score: float) -> float:
        return score - best if self.higher_is_better else best - score

    def describe(self) -> dict:
        return {"mechanism": "Ladder (Blum & Hardt 2015)", "step": self.step,
                "higher_is_better": self.higher_is_better,
                "rule": "a team's score changes only when a submission beats it by more than the step, "
                        "then to that submission's score rounded to a multiple of the step"}
