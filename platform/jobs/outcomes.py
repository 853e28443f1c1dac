"""How a job's run ends, as each reader sees it: the failure a run raises (`JobFailed`), the
public outcome (`outcome_dict`) and the stewards' masked log (`steward_log`). Shared by the
runner and the kinds of run it hands jobs to (`code_jobs`, `federated`), which import it
rather than the runner that imports them."""
from __future__ import annotations

from sandbox import redact
from sandbox.isolation import Outcome


class JobFailed(Exception):
    """The run ended without a releasable output. Its message is the reason the applicant
    reads: a fixed category (sandbox.failures), never text the job wrote. `detail` says more,
    for the data owner's stewards (it goes into the masked log); `outcome` is the public
    outcome (`outcome_dict`); `touched` says whether it ran on the data."""

    def __init__(self, reason: str, *, detail: str = "", outcome: dict | None = None, log: str = "",
                 touched: bool = True, values: frozenset[str] = frozenset()):
        super().__init__(reason)
        self.detail, self.outcome, self.log, self.touched = detail, outcome or {}, log, touched
        self.values = values  # the private values to mask in the log (sandbox.redact)


def steward_log(text: str, detail: str = "", *, values: frozenset[str] = frozenset(), numbers: bool = True) -> str:
    """A run's log as the data owner's stewards read it: masked (sandbox.redact), with the
    platform's detail on how it ended (also masked: it may quote a file name the job chose)."""
    masked = redact.mask(text or "", values, numbers=numbers)
    if detail:
        masked += f"\n[miliao] {redact.mask(detail, values, numbers=numbers)}"
    return masked


def outcome_dict(outcome: Outcome, reason: str = "") -> dict:
    """How a run ended, as the applicant and the events see it: the category and the time,
    never the job's exit status or a line of its log."""
    return {"ok": outcome.ok, "reason": outcome.reason, "message": reason if not outcome.ok else outcome.message,
            "seconds": round(outcome.seconds, 1)}
