"""The ε a job records agrees with an independent accountant (Google's dp-accounting)
for the same noise, sampling rate and number of steps: within 1 %."""
from __future__ import annotations

import dp_accounting
import pytest

from sandbox import training

from sandbox_support import rooms  # noqa: F401  (the fixture)

pytestmark = pytest.mark.sandbox


def _independent(privacy: dict, accountant: str) -> float:
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(privacy["sample_rate"],
                                            dp_accounting.GaussianDpEvent(privacy["noise_multiplier"])),
        privacy["steps"])
    if accountant == "rdp":
        independent = dp_accounting.rdp.RdpAccountant()
    else:
        independent = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-4)
    independent.compose(event)
    return independent.get_epsilon(privacy["delta"])


@pytest.mark.parametrize("accountant, target", [("rdp", 1.0), ("rdp", 3.0), ("prv", 3.0)])
def test_recorded_epsilon_matches_dp_accounting(rooms, accountant, target):
    task, train, test = rooms
    result = training.fit(task, training.TrainSpec(epochs=2, batch_size=128, learning_rate=0.5, accountant=accountant,
                                                   target_epsilon=target, delta=1e-5), train, test)
    privacy = result.privacy
    assert privacy["epsilon"] <= target * 1.01
    expected = _independent(privacy, accountant)
    assert abs(privacy["epsilon"] - expected) / expected < 0.01, (privacy, expected)


def test_a_train_spec_refuses_bad_privacy_parameters_naming_the_field():
    for field, value in [("target_epsilon", 0), ("delta", 1.5), ("max_grad_norm", -1), ("accountant", "moments")]:
        with pytest.raises(ValueError, match=field):
            training.TrainSpec(**{field: value})
