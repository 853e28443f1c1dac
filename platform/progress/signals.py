"""What tracked tasks announce. Sent inside the transaction that changes the task, so a
receiver's writes (the event log's event) commit or roll back with it."""
from __future__ import annotations

from django.dispatch import Signal

# A running task's worker died and the task was failed (progress.actions.recover_lost_tasks);
# sent with `task`, the failed TaskProgress row. The event log records it (provenance.receivers).
task_lost = Signal()
