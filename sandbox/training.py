"""Training and evaluating the built-in tasks' models, with or without Opacus DP-SGD.

Opacus does the privacy: `PrivacyEngine.make_private_with_epsilon` derives the noise from the
target (ε, δ), the sampling rate and the number of epochs, with Poisson sampling, per-sample
clipping and its own accountant (RDP or PRV). This module only feeds it the arrays.

The per-sample clipping is Opacus's fast gradient clipping ("ghost" mode): it computes each
example's gradient norm without materializing its gradient, then backpropagates the loss
reweighted by the clipping factors. The mechanism, and so the accounting, is that of DP-SGD;
on these MLPs it costs 1.5-2x a plain epoch where materialized per-sample gradients cost 3x
(bench/training.py).
"""
from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from .tasks import Arrays, Task

ACCOUNTANTS = ("rdp", "prv")
GRAD_SAMPLE_MODE = "ghost"

# Called after each epoch with (epoch, epochs, metrics of that epoch).
EpochReporter = Callable[[int, int, dict], None]


@dataclass
class TrainSpec:
    epochs: int = 5
    batch_size: int = 256
    learning_rate: float = 0.3
    private: bool = True
    target_epsilon: float = 3.0
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    accountant: str = "rdp"
    seed: int = 0
    hidden: int = 64

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.epochs > 1000:
            raise ValueError(f"epochs: must be 1..1000, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size: must be positive, got {self.batch_size}")
        if not (0 < self.learning_rate < 10):
            raise ValueError(f"learning_rate: must be in (0, 10), got {self.learning_rate}")
        if self.private:
            if not (0 < self.target_epsilon <= 100) or not math.isfinite(self.target_epsilon):
                raise ValueError(f"target_epsilon: must be in (0, 100], got {self.target_epsilon}")
            # The platform checked δ already (budgets.amounts.delta); the sandbox, Django-free and
            # run on a spec that crossed a process boundary, checks its own input again.
            if not (0 < self.delta < 1):
                raise ValueError(f"delta: must be in (0, 1), got {self.delta}")
            if not (self.max_grad_norm > 0):
                raise ValueError(f"max_grad_norm: must be positive, got {self.max_grad_norm}")
            if self.accountant not in ACCOUNTANTS:
                raise ValueError(f"accountant: one of {', '.join(ACCOUNTANTS)}, got {self.accountant!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    state: dict  # the model's state_dict, tensors on the CPU
    history: list[dict] = field(default_factory=list)  # per epoch: loss, test metric, seconds
    privacy: dict = field(default_factory=dict)  # noise_multiplier, sample_rate, steps, epsilon, delta, ...
    metrics: dict = field(default_factory=dict)  # final held-out metrics and the trivial baseline


def build_model(task: Task, features: int, hidden: int = 64) -> nn.Module:
    """A small MLP: every layer is one Opacus computes per-sample gradients for."""
    return nn.Sequential(
        nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, task.outputs),
    )


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_name() -> str:
    """The device training runs on, as a holder reports it: `cpu`, or `cuda:<the GPU's name>`."""
    return f"cuda:{torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu"


def loss_fn(task: Task) -> nn.Module:
    return nn.CrossEntropyLoss() if task.kind == "classification" else nn.MSELoss()


def _target(task: Task, y: torch.Tensor, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return (out, y) if task.kind == "classification" else (out.squeeze(-1), y)


def evaluate(task: Task, model: nn.Module, data: Arrays) -> dict:
    """The held-out metric: accuracy, or RMSE of log rent (with R²)."""
    model.eval()
    dev = next(model.parameters()).device
    with torch.no_grad():
        out = model(torch.from_numpy(data.x).to(dev)).cpu()
    model.train()
    if task.kind == "classification":
        return {"accuracy": float((out.argmax(1).numpy() == data.y).mean())}
    pred = out.squeeze(-1).numpy()
    mse = float(np.mean((pred - data.y) ** 2))
    var = float(np.var(data.y)) or 1.0
    return {"rmse": math.sqrt(mse), "r2": 1.0 - mse / var}


def fit(
    task: Task, spec: TrainSpec, train: Arrays, test: Arrays, *, state: dict | None = None,
    on_epoch: EpochReporter | None = None, schedule_epochs: int | None = None, prior: list | None = None,
    noise_multiplier: float | None = None, on: torch.device | None = None,
) -> TrainResult:
    """Train on `train` (from `state` if given), evaluating on `test` after each epoch.

    A federated holder trains `spec.epochs` per round but owes its records one guarantee for
    the whole run: `schedule_epochs` (all rounds' epochs) sets the noise for the target ε,
    and `prior` (the accountant history of earlier rounds, `privacy["history"]`) is
    composed with this round's steps; `noise_multiplier`, when an earlier round has worked it
    out, saves working it out again. `on` is the device to train on (by default `device()`: the
    GPU where there is one)."""
    with warnings.catch_warnings():
        # Opacus warns that its RNG is not cryptographic, that backward hooks fire on inputs
        # that need no gradient, and when the best RDP order is its largest: none changes
        # the accounting (tests/sandbox/test_accounting.py checks it independently).
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        return _fit(task, spec, train, test, state=state, on_epoch=on_epoch, schedule_epochs=schedule_epochs,
                    prior=prior, noise_multiplier=noise_multiplier, dev=on or device())


def _fit(task, spec, train, test, *, state, on_epoch, schedule_epochs, prior, noise_multiplier,
         dev) -> TrainResult:
    torch.manual_seed(spec.seed)
    model = build_model(task, train.x.shape[1], spec.hidden)
    if state is not None:
        model.load_state_dict(state)
    model.to(dev)
    loader = DataLoader(
        TensorDataset(torch.from_numpy(train.x), torch.from_numpy(train.y)),
        batch_size=min(spec.batch_size, len(train)), shuffle=True,
        generator=torch.Generator().manual_seed(spec.seed),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=spec.learning_rate, momentum=0.9)
    criterion = loss_fn(task)
    engine = None
    if spec.private:
        from opacus import PrivacyEngine

        engine = PrivacyEngine(accountant=spec.accountant)
        if schedule_epochs is None:
            model, optimizer, criterion, loader = engine.make_private_with_epsilon(
                module=model, optimizer=optimizer, criterion=criterion, data_loader=loader,
                target_epsilon=spec.target_epsilon, target_delta=spec.delta, epochs=spec.epochs,
                max_grad_norm=spec.max_grad_norm, grad_sample_mode=GRAD_SAMPLE_MODE,
            )
        else:
            from opacus.accountants.utils import get_noise_multiplier

            noise = noise_multiplier or get_noise_multiplier(
                target_epsilon=spec.target_epsilon, target_delta=spec.delta, sample_rate=1 / len(loader),
                epochs=schedule_epochs, accountant=spec.accountant)
            model, optimizer, criterion, loader = engine.make_private(
                module=model, optimizer=optimizer, criterion=criterion, data_loader=loader, noise_multiplier=noise,
                max_grad_norm=spec.max_grad_norm, grad_sample_mode=GRAD_SAMPLE_MODE,
            )
        engine.accountant.history = [tuple(h) for h in prior or []]
    result = TrainResult(state={})
    for epoch in range(1, spec.epochs + 1):
        started = time.perf_counter()
        total, batches = 0.0, 0
        for xb, yb in loader:
            if len(yb) == 0:  # Poisson sampling can draw an empty batch
                continue
            xb, yb = xb.to(dev), yb.to(dev)
            optimizer.zero_grad()
            loss = criterion(*_target(task, yb, model(xb)))
            loss.backward()
            optimizer.step()
            total += loss.item()
            batches += 1
        row = {"epoch": epoch, "loss": total / max(batches, 1), "seconds": time.perf_counter() - started,
               **evaluate(task, model, test)}
        if engine is not None:
            row["epsilon"] = engine.get_epsilon(spec.delta)
        result.history.append(row)
        if on_epoch is not None:
            on_epoch(epoch, spec.epochs, row)
    plain = model._module if hasattr(model, "_module") else model
    result.state = {k: v.detach().cpu().clone() for k, v in plain.state_dict().items()}
    result.metrics = evaluate(task, plain, test)
    if engine is not None:
        result.privacy = {
            "mechanism": "DP-SGD (Opacus, Poisson sampling, per-sample clipping by fast gradient clipping)",
            "accountant": spec.accountant,
            "noise_multiplier": float(optimizer.noise_multiplier),
            "sample_rate": float(loader.sample_rate),
            "steps": sum(h[2] for h in engine.accountant.history),
            "max_grad_norm": spec.max_grad_norm,
            "history": [list(h) for h in engine.accountant.history],
            "epsilon": float(engine.get_epsilon(spec.delta)),
            "delta": spec.delta,
        }
    return result
