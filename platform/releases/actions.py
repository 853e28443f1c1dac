"""Release policies and releases: save a policy, build a release, publish it.

Building runs as a tracked Celery task; the pipeline writes into a staging folder named by
the release and renames it into place, and the commit records the report and the hashes in
one transaction with the release's event. A crash leaves no published partial output and a
rerun of the same task changes nothing."""
from __future__ import annotations

import shutil
from pathlib import Path

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from catalog import rules as catalog_rules
from catalog.actions import next_version
from catalog.models import Dataset
from corpora.models import CorpusVersion
from kernel.errors import Conflict, InvalidInput
from kernel.events import EventType
from kernel.paths import state_path
from progress.actions import by_name, queue_task
from provenance.recorder import actor_of, record, subject_of

from . import rules
from .keys import new_release_key
from .models import Release, ReleasePolicy, ReleaseStatus
from .pipeline import ReleaseSpec

BUILD_TASK_KIND = "releases.build"


def release_dir(release: Release) -> Path:
    return state_path("releases") / f"r{release.pk}"


def parse_spec(data) -> ReleaseSpec:
    try:
        return ReleaseSpec.from_dict(data)
    except ValueError as exc:
        raise InvalidInput("spec", str(exc)) from exc


@transaction.atomic(durable=True)
def save_policy(*, actor, dataset: Dataset, spec: dict) -> ReleasePolicy:
    """A new version of the dataset's release policy."""
    catalog_rules.check_manage_dataset(actor, dataset)
    parsed = parse_spec(spec)
    if parsed.data_class != dataset.data_class:
        raise InvalidInput(
            "spec", gettext("data_class: %(dataset)s is %(dataset_data_class)s, the policy says "
                            "%(parsed_data_class)s")
                    % {"dataset": dataset.slug,
                       "dataset_data_class": dataset.get_data_class_display(),
                       "parsed_data_class": parsed.data_class}
        )
    version = next_version(dataset, dataset.policies.all())
    policy = ReleasePolicy.objects.create(
        dataset=dataset, version=version, spec=parsed.to_dict(), sha256=parsed.sha256(), created_by=actor
    )
    record(
        EventType.RELEASES_POLICY_SAVED,
        actor=actor_of(actor),
        subject=subject_of(policy),
        payload={"dataset": dataset.slug, "version": version, "sha256": policy.sha256},
        inputs=[subject_of(dataset)],
    )
    return policy


def start_release(*, actor, corpus: CorpusVersion, policy: ReleasePolicy) -> Release:
    """Queue a release build of a corpus version under a policy of the same dataset."""
    catalog_rules.check_manage_dataset(actor, corpus.dataset)
    if policy.dataset_id != corpus.dataset_id:
        raise InvalidInput("policy", gettext("policy v%(policy_version)s belongs to "
                                             "%(policy_dataset_slug)s, not %(corpus_dataset_slug)s")
                                     % {"policy_version": policy.version,
                                        "policy_dataset_slug": policy.dataset.slug,
                                        "corpus_dataset_slug": corpus.dataset.slug})
    rules.check_leaves_the_platform(corpus.dataset)
    try:
        parse_spec(policy.spec).check_releasable()
    except ValueError as exc:
        raise InvalidInput("policy", gettext("policy v%(policy_version)s: %(exc)s")
                                     % {"policy_version": policy.version, "exc": exc}) from exc
    with transaction.atomic():
        _, encrypted = new_release_key()
        release = Release.objects.create(corpus=corpus, policy=policy, key_encrypted=encrypted, created_by=actor)
        release.task = queue_task(
            BUILD_TASK_KIND,
            label=gettext_noop("生成发布 #%(release)s"),
            label_args={"release": release.pk},
            actor=actor,
            dispatch=by_name("releases.build", release.pk),
        )
        release.save(update_fields=["task"])
        record(
            EventType.RELEASES_RELEASE_STARTED,
            actor=actor_of(actor),
            subject=subject_of(release),
            payload={
                "dataset": corpus.dataset.slug,
                "corpus_version": corpus.version,
                "corpus_sha256": corpus.sha256,
                "policy_version": policy.version,
                "policy_sha256": policy.sha256,
            },
            inputs=[subject_of(corpus), subject_of(policy)],
        )
    return release


def record_release_built(*, release: Release, report: dict) -> None:
    """Inside the transaction that finishes the build task."""
    release = Release.objects.select_for_update().get(pk=release.pk)
    if release.status != ReleaseStatus.BUILDING:
        return
    release.status = ReleaseStatus.BUILT
    release.report = report
    release.outputs = report["outputs"]
    release.save(update_fields=["status", "report", "outputs"])
    record(
        EventType.RELEASES_RELEASE_BUILT,
        actor="system",
        subject=subject_of(release),
        payload={
            "hashes": report["hashes"],
            "units_in": report["units_in"],
            "units_out": report["units_out"],
            "k_reached": report["desensitized"]["k_anonymity"]["k_reached"],
            "l_reached": report["desensitized"]["k_anonymity"]["l_reached"],
        },
    )


@transaction.atomic(durable=True)
def record_release_failed(*, release_id: int, error: str) -> None:
    release = Release.objects.select_for_update().get(pk=release_id)
    if release.status != ReleaseStatus.BUILDING:
        return
    release.status = ReleaseStatus.FAILED
    release.save(update_fields=["status"])
    record(EventType.RELEASES_RELEASE_FAILED, actor="system", subject=subject_of(release), payload={"error": error[:500]})


def release_build_lost(task, reason: str) -> None:
    """The worker building `task`'s release died (progress.recover_lost_tasks): the release
    fails with the reason and its partial output is removed, so that the same corpus version
    and policy can be built again as a new release."""
    release = Release.objects.filter(task_id=task.pk).first()
    if release is None:
        return
    record_release_failed(release_id=release.pk, error=reason)
    if Release.objects.filter(pk=release.pk, status=ReleaseStatus.FAILED).exists():
        out = release_dir(release)
        for partial in out.parent.glob(f"{out.name}.partial-*"):  # each build writes its own
            shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)  # renamed into place, but its commit never came


@transaction.atomic(durable=True)
def publish_release(*, actor, release: Release) -> Release:
    """A steward of the owning bureau approves publication of a built release."""
    release = Release.objects.select_for_update().select_related("corpus__dataset").get(pk=release.pk)
    rules.check_publish_release(actor, release)
    if release.status != ReleaseStatus.BUILT:
        raise Conflict(gettext("release #%(release)s is %(release_status)s; only a built release can be "
                               "published")
                       % {"release": release.pk, "release_status": release.get_status_display()})
    release.status = ReleaseStatus.PUBLISHED
    release.published_by = actor
    release.published_at = timezone.now()
    release.save(update_fields=["status", "published_by", "published_at"])
    record(
        EventType.RELEASES_RELEASE_PUBLISHED,
        actor=actor_of(actor),
        subject=subject_of(release),
        payload={"outputs": {fmt: out["sha256"] for fmt, out in release.outputs.items()}},
    )
    return release
