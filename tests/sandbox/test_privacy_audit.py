"""The privacy claim, attacked: a membership-inference attack on planted canaries (one-run
auditing) gives an empirical lower bound on ε. On a model trained without DP the attack
works (the bound is well above 0); on a DP model it must stay below the claimed ε."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sandbox import audit, training

from sandbox_support import rooms  # noqa: F401  (the fixture)

pytestmark = pytest.mark.sandbox


def test_the_attack_finds_members_of_a_model_trained_without_dp(rooms):
    task, train, test = rooms
    report = audit.audit(task, training.TrainSpec(epochs=15, private=False, learning_rate=0.05), train, test,
                         canaries=600)
    print("non-private:", report.to_dict())
    assert report.claimed_epsilon is None
    assert report.advantage > 0.2 and report.epsilon_lower_bound > 0.7, report


@pytest.mark.parametrize("claimed", [1.0, 3.0])
def test_the_empirical_epsilon_of_a_dp_model_stays_below_the_claim(rooms, claimed):
    task, train, test = rooms
    report = audit.audit(task, training.TrainSpec(epochs=15, target_epsilon=claimed, learning_rate=0.5), train,
                         test, canaries=600)
    print(f"DP ε={claimed}:", report.to_dict())
    assert report.claimed_epsilon <= claimed * 1.001
    assert report.epsilon_lower_bound < report.claimed_epsilon, report
    assert report.advantage < 0.2


def test_the_lower_bound_follows_the_binomial_tail():
    # 100 right out of 100 has probability p^100 under ε-DP, p = e^ε / (1 + e^ε): below 5 % for
    # every ε under log(q / (1 - q)), q = 0.05^(1/100). 50 of 100 is chance.
    q = 0.05 ** (1 / 100)
    assert audit.epsilon_lower_bound(100, 100, 0.05) == pytest.approx(math.log(q / (1 - q)), abs=1e-6)
    assert audit.epsilon_lower_bound(50, 100, 0.05) == 0.0
    assert audit.epsilon_lower_bound(60, 100, 0.05) < audit.epsilon_lower_bound(80, 100, 0.05)


def test_the_attack_scores_members_above_non_members_when_they_separate():
    included = np.array([True] * 50 + [False] * 50)
    guesses, correct, bound, advantage = audit.attack(included, np.where(included, 1.0, 0.0) + np.arange(100) * 1e-6)
    assert correct == guesses and advantage == 1.0 and bound > 2.0


def test_an_audit_refuses_too_few_canaries(rooms):
    task, train, test = rooms
    with pytest.raises(ValueError, match="canaries"):
        audit.audit(task, training.TrainSpec(epochs=1), train, test, canaries=5)
