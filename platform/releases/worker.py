"""The release build's work, on a worker."""
from __future__ import annotations

from kernel.paths import state_path
from progress.actions import run_tracked

from .actions import record_release_built, record_release_failed, release_dir
from .keys import open_release_key
from .models import Release
from .pipeline import ReleaseSpec, run_release


def build_release(task_id: str, release_id: int) -> None:
    """Build a release under its policy, with visible progress: the task `releases.build`."""
    release = Release.objects.select_related("corpus", "policy").get(pk=release_id)

    def work(report) -> dict:
        return run_release(
            state_path(release.corpus.path),
            ReleaseSpec.from_dict(release.policy.spec),
            open_release_key(release.key_encrypted),
            release_dir(release),
            basename=f"{release.corpus.dataset.slug}-v{release.corpus.version}-r{release.pk}",
            progress=report,
        )

    run_tracked(task_id, work, commit=lambda result: record_release_built(release=release, report=result),
                on_failure=lambda reason: record_release_failed(release_id=release_id, error=reason))
