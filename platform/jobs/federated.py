"""A federated job on the platform's standing SuperLink (sandbox.federated.run.run_standing):
the job's params and the platform's settings become the Flower App's run config, submitted
with `flwr run`; the district nodes it names train on the partitions they hold; its rounds
become the job page's curve, and a run that ends badly becomes a failed job whose charge
matches what the holders may have spent. The runner starts no SuperLink and no SuperNode."""
from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.utils.translation import gettext_noop

from sandbox.federated.run import FederationFailed, app_config, run_standing

from . import actions
from .models import Job


def run(job: Job, root: Path, summary: dict, report) -> dict:
    from .outcomes import JobFailed

    from federation import live

    partitions = summary["partitions"]
    p = job.params
    holders = {part["flower_node_id"]: part["node"] for part in partitions}
    config = app_config(
        task=job.task, neighbourhoods=summary["neighbourhoods"], holdout_salt=job.corpus.sha256, params=p,
        clipping_norm=settings.FLOWER_CLIPPING_NORM,
        holder_noise=settings.FLOWER_HOLDER_NOISE,
        secagg_clipping_range=settings.FLOWER_SECAGG_CLIPPING_RANGE, secagg_timeout=settings.FLOWER_SECAGG_TIMEOUT_S,
        out=root / "work", max_examples=max(part["units"] for part in partitions),
        initial_weights=summary.get("base_weights", ""), dataset=job.dataset.slug)

    def on_rounds(rounds: list[dict]) -> None:
        actions.report_progress(job, rounds)
        report(5 + 90 * rounds[-1]["round"] / p["rounds"], gettext_noop("round %(round)s of %(rounds)s"),
               round=rounds[-1]["round"], rounds=p["rounds"])

    report(3, gettext_noop("submitting to the SuperLink, %(nodes)s district nodes"), nodes=len(holders))
    try:
        done = run_standing(live.superlink(), root / "flower", config, holders, min_nodes=p["min_nodes"],
                            wall_seconds=job.limits["wall_seconds"], on_rounds=on_rounds)
    except FederationFailed as exc:  # the reason up to what it quotes (a Flower or OS message)
        raise JobFailed(str(exc).split(": ", 1)[0], detail=str(exc), outcome=exc.outcome, log=exc.log,
                        touched=exc.started) from None
    privacy = done.result["privacy"]
    if done.nodes_dropped:  # a holder that died mid-round may have run steps it never reported
        privacy["epsilon"] = p["target_epsilon"]
        privacy["note"] = f"{done.nodes_dropped} holder(s) dropped out; charged the full target ε"
    return {"privacy": privacy, "history": done.result["history"], "metrics": done.result["metrics"],
            "outcome": {"run_id": str(done.run_id), "nodes_started": done.nodes_started,
                        "nodes_dropped": done.nodes_dropped, "seconds": done.result["seconds"],
                        "partitions": partitions, "holders": done.result.get("holders", {})},
            "log": done.log}
