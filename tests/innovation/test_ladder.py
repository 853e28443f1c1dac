"""The public leaderboard's mechanism, attacked: an adaptive "boosting" attack (Blum & Hardt
2015) submits random guesses of the hidden labels, keeps those the board says did well, and
combines them by a vote. Against exact scores it overfits the public part (its public score
rises far above chance while its score on fresh labels does not); against the Ladder it
learns almost nothing."""
from __future__ import annotations

import numpy as np
import pytest

from innovation.ladder import Ladder

pytestmark = pytest.mark.innovation

CLASSES, ROWS, PROBES = 6, 2000, 300


def boosting_attack(board: str, seed: int) -> tuple[float, float]:
    """(public accuracy, fresh accuracy) of the attacker's final vote."""
    rng = np.random.default_rng(seed)
    public, fresh = rng.integers(0, CLASSES, ROWS), rng.integers(0, CLASSES, ROWS)
    ladder = Ladder(step=0.01, higher_is_better=True)
    shown = None
    votes = np.zeros((2 * ROWS, CLASSES))
    for _ in range(PROBES):
        guess = rng.integers(0, CLASSES, 2 * ROWS)
        accuracy = float(np.mean(guess[:ROWS] == public))
        if board == "exact":
            kept = accuracy > 1 / CLASSES  # the exact score says whether this guess did well
        else:
            before, shown = shown, ladder.release(shown, accuracy)
            kept = shown != before  # all the Ladder says: the team's board score moved
        if kept:
            votes[np.arange(2 * ROWS), guess] += 1
    final = votes.argmax(1)
    return float(np.mean(final[:ROWS] == public)), float(np.mean(final[ROWS:] == fresh))


def test_the_ladder_limits_what_probing_learns_about_the_hidden_labels():
    runs = {board: [boosting_attack(board, seed) for seed in range(5)] for board in ("exact", "ladder")}
    # Overfitting: how far the attack's public score is above its score on labels it never probed.
    bias = {board: float(np.mean([pub - fresh for pub, fresh in rows])) for board, rows in runs.items()}
    print("public minus fresh accuracy of the boosting attack:", bias)
    assert bias["exact"] > 0.04  # exact scores leak the hidden labels
    assert bias["ladder"] < 0.015  # the Ladder does not
    assert bias["exact"] > 4 * bias["ladder"]


def test_the_ladder_moves_only_on_a_real_improvement_and_rounds_to_its_step():
    ladder = Ladder(step=0.01, higher_is_better=True)
    assert ladder.release(None, 0.6137) == 0.61
    assert ladder.release(0.61, 0.6195) == 0.61  # not better by more than η
    assert ladder.release(0.61, 0.6251) == 0.63
    rmse = Ladder(step=0.01, higher_is_better=False)
    assert rmse.release(0.42, 0.415) == 0.42 and rmse.release(0.42, 0.391) == 0.39


@pytest.mark.parametrize("step", [0, 1.5, float("nan")])
def test_a_ladder_refuses_a_step_outside_0_1(step):
    with pytest.raises(ValueError, match="ladder_step"):
        Ladder(step=step, higher_is_better=True)
