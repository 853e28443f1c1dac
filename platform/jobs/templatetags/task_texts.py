"""The shared codes as template filters: `{{ code|task_title }}`, `{{ code|task_kind }}`,
`{{ name|metric_name }}`, `{{ code|level_label }}`, `{{ code|shift_label }}` and
`{{ code|format_label }}`, in the reader's language (the tables are kernel.texts)."""
from __future__ import annotations

from django import template

from kernel import texts

register = template.Library()

for _filter in (texts.task_title, texts.task_kind, texts.metric_name, texts.level_label, texts.shift_label,
                texts.format_label):
    register.filter(_filter.__name__, _filter)
