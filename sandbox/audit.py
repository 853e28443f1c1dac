"""A privacy audit of DP training by attacking it: plant canaries, train once, and measure how
well a membership-inference attack tells the canaries that were trained on from those that
were not.

The method is one-run auditing (Steinke, Nasr & Jagielski, "Privacy Auditing with One (1)
Training Run", NeurIPS 2023): each of m canaries goes into the training set with probability
1/2, independently; after training, the attack scores every canary (the model's loss on it:
members have lower loss) and guesses "in" for its k highest scores and "out" for its k lowest.
If training were ε-DP, the number of right guesses would be dominated by Binomial(2k, e^ε/(1+e^ε)),
so seeing v right guesses rules out every ε whose binomial tail at v is below β: the largest
such ε is the **empirical lower bound** at confidence 1 − β. A few values of k are tried, with β
split between them (Bonferroni), so choosing the best k after the fact cannot inflate it.

The canaries are out-of-distribution points (features far from any room, with a random label):
the records a model memorizes most, and so the strongest canaries for a black-box attack on
the final model. The bound uses the pure-DP form of the theorem and ignores δ (1e-5 here),
which can only make it larger, so "the bound stays below the claim" is the harder check.

What it shows and what it does not: a bound above the claimed ε would prove the accounting
wrong; a bound below it is consistent with the claim, not a proof of it (a black-box attack
on the final model is weaker than the worst case DP protects against).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.stats import binom

from . import training
from .tasks import Arrays, Task

GUESS_SHARES = (0.02, 0.05, 0.1, 0.2)  # k as a share of the canaries, each side


@dataclass
class AuditReport:
    claimed_epsilon: float | None  # the accountant's ε of the audited run (None: not private)
    delta: float | None
    canaries: int
    included: int
    guesses: int  # of the best k
    correct: int
    advantage: float  # TPR − FPR of "in" above the median score
    epsilon_lower_bound: float
    confidence: float
    metric: dict  # the audited model's held-out metric

    def to_dict(self) -> dict:
        return asdict(self)


def plant_canaries(task: Task, features: int, count: int, rng: np.random.Generator) -> Arrays:
    """`count` out-of-distribution records with random targets."""
    x = (rng.standard_normal((count, features)) * 3.0).astype(np.float32)
    if task.kind == "classification":
        y = rng.integers(0, task.outputs, count).astype(np.int64)
    else:
        y = (rng.standard_normal(count) * 3.0).astype(np.float32)
    return Arrays(x, y, np.full(count, "canary"))


def scores(task: Task, model: torch.nn.Module, canaries: Arrays) -> np.ndarray:
    """Minus each canary's loss: higher means "more likely trained on"."""
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(canaries.x))
        y = torch.from_numpy(canaries.y)
        if task.kind == "classification":
            loss = torch.nn.functional.cross_entropy(out, y, reduction="none")
        else:
            loss = (out.squeeze(-1) - y) ** 2
    return -loss.numpy()


def epsilon_lower_bound(correct: int, guesses: int, beta: float) -> float:
    """The largest ε under which `correct` or more right out of `guesses` has probability
    below `beta` (0 when even ε = 0 explains it)."""
    if guesses == 0 or correct <= guesses / 2:
        return 0.0

    def tail(eps: float) -> float:
        return float(binom.sf(correct - 1, guesses, 1.0 / (1.0 + math.exp(-eps))))

    if tail(0.0) >= beta:
        return 0.0
    lo, hi = 0.0, 60.0
    if tail(hi) < beta:
        return hi
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if tail(mid) < beta else (lo, mid)
    return lo


def attack(included: np.ndarray, score: np.ndarray, *, beta: float = 0.05) -> tuple[int, int, float, float]:
    """(guesses, correct, ε lower bound, advantage) of the best of GUESS_SHARES's k."""
    order = np.argsort(-score, kind="stable")
    best = (0, 0, 0.0)
    for share in GUESS_SHARES:
        k = max(1, int(len(score) * share))
        right = int(included[order[:k]].sum() + (~included[order[-k:]]).sum())
        bound = epsilon_lower_bound(right, 2 * k, beta / len(GUESS_SHARES))
        if bound >= best[2]:
            best = (2 * k, right, bound)
    above = score > np.median(score)
    tpr = float(above[included].mean()) if included.any() else 0.0
    fpr = float(above[~included].mean()) if (~included).any() else 0.0
    return best[0], best[1], best[2], tpr - fpr


def audit(task: Task, spec: training.TrainSpec, train: Arrays, test: Arrays, *, canaries: int = 1000,
          seed: int = 0, beta: float = 0.05) -> AuditReport:
    """Train `spec` on `train` plus a random half of `canaries` planted records, attack it,
    and report the attack beside the run's accounted ε."""
    if canaries < 20:
        raise ValueError(f"canaries: at least 20 for a meaningful audit, got {canaries}")
    if not 0 < beta < 1:
        raise ValueError(f"beta: must be in (0, 1), got {beta}")
    rng = np.random.default_rng(seed)
    planted = plant_canaries(task, train.x.shape[1], canaries, rng)
    included = rng.random(canaries) < 0.5
    members = planted.take(included)
    combined = Arrays(np.concatenate([train.x, members.x]), np.concatenate([train.y, members.y]),
                      np.concatenate([train.district.astype(str), members.district]))
    result = training.fit(task, spec, combined, test)
    model = training.build_model(task, train.x.shape[1], spec.hidden)
    model.load_state_dict(result.state)
    guesses, correct, bound, advantage = attack(included, scores(task, model, planted), beta=beta)
    return AuditReport(
        claimed_epsilon=result.privacy.get("epsilon"), delta=result.privacy.get("delta"), canaries=canaries,
        included=int(included.sum()), guesses=guesses, correct=correct, advantage=advantage,
        epsilon_lower_bound=bound, confidence=1 - beta, metric=result.metrics,
    )


def main() -> None:
    """`python -m sandbox.audit`: audit a non-private and a DP run on a generated district."""
    import argparse
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))
    from corpora.generator import district_units

    from . import tasks

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--rooms", type=int, default=6000)
    parser.add_argument("--canaries", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--epsilon", type=float, nargs="+", default=[1.0, 3.0, 8.0])
    args = parser.parse_args()
    table = district_units(seed=5, rooms=args.rooms)
    task = tasks.task_named("room-use")
    train, test = tasks.split(table, task, tasks.vocabulary(table))
    runs = [("non-private", training.TrainSpec(epochs=args.epochs, private=False, learning_rate=0.05))]
    runs += [(f"DP ε={e:g}", training.TrainSpec(epochs=args.epochs, target_epsilon=e, learning_rate=0.5))
             for e in args.epsilon]
    for name, spec in runs:
        r = audit(task, spec, train, test, canaries=args.canaries)
        claimed = "∞" if r.claimed_epsilon is None else f"{r.claimed_epsilon:.3f}"
        print(f"{name:>12}: claimed ε {claimed:>6}  empirical ε ≥ {r.epsilon_lower_bound:.3f} "
              f"({r.confidence:.0%})  advantage {r.advantage:.3f}  right {r.correct}/{r.guesses}  "
              f"accuracy {r.metric.get('accuracy', float('nan')):.3f}")


if __name__ == "__main__":
    main()
