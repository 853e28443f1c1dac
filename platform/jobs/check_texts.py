"""The output checks of sandbox/checks.py as people read them: each check's name and detail in
the reader's language. sandbox/ is Django-free, so its texts are marked for translation here
(tests/portal/test_i18n.py checks that every detail the sandbox writes is listed)."""
from __future__ import annotations

from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

NAMES = {
    "output_files": _("输出文件"),
    "output_size": _("输出大小"),
    "weights": _("模型权重"),
    "privacy": _("隐私核算"),
    "beats_baseline": _("优于基线"),
    "identifiers": _("个体标识"),
    "verbatim_rows": _("原样数据行"),
    "small_cells": _("小计数单元"),
    "encoded": _("编码内容"),
    "compressibility": _("可压缩性"),
    "information": _("信息量"),
    "row_local": _("逐条贡献"),
}

DETAILS = (
    gettext_noop("files: %(files)s (allowed: %(allowed)s)"),
    gettext_noop("%(size)s bytes (limit %(limit)s)"),
    gettext_noop("the output holds 1 to %(most)s files, each of a type allowed (%(allowed)s)"),
    gettext_noop("the output holds no file, more than %(most)s, or files of a type not allowed (allowed: %(allowed)s)"),
    gettext_noop("the output is within the policy's limit of %(limit)s bytes"),
    gettext_noop("the output is over the policy's limit of %(limit)s bytes"),
    gettext_noop("no private identifier appears in the output"),
    gettext_noop("private identifiers (unit or building ids) appear in the output"),
    gettext_noop("no private row appears in the output"),
    gettext_noop("private rows appear in the output (a row's exact area with its exact rent or build year)"),
    gettext_noop("no count below %(least)s"),
    gettext_noop("counts between 1 and %(below)s appear in the output"),
    gettext_noop("no base64, hex or long digit runs"),
    gettext_noop("runs of base64 (40+ characters), hex (32+) or digits (24+): encoded data?"),
    gettext_noop("every file compresses like a table or text (zlib ratio at most %(ratio)s)"),
    gettext_noop("a file does not compress like a table or text (zlib ratio above %(ratio)s): "
                 "compressed or encrypted data?"),
    gettext_noop("the output holds at most %(kib)s KiB of information (its zlib-compressed size)"),
    gettext_noop("the output holds more than %(kib)s KiB of information (its zlib-compressed size)"),
    gettext_noop("%(tensors)s tensors, %(params)s parameters"),
    gettext_noop("%(tensors)s tensors, %(params)s parameters, some not finite"),
    gettext_noop("accountant ε %(spent)s for target ε %(target)s"),
    gettext_noop("no accountant figure: the output is not differentially private"),
    gettext_noop("%(score)s against the trivial model's %(baseline)s"),
    gettext_noop("not a plain state_dict: %(error)s"),
    gettext_noop("every record contributed the same when the code ran on half of the rows"),
)


def shown(checks: list[dict]) -> list[dict]:
    """The checks with `label` (the check's name) and `text` (its detail) in the active language."""
    out = []
    for found in checks:
        message, args = found.get("message"), found.get("args") or {}
        try:
            detail = found.get("detail", "")
            text = gettext(message) % args if message else (gettext(detail) if detail else "")
        except (KeyError, TypeError, ValueError):  # a catalogue out of step with the stored values
            text = found.get("detail", "")
        out.append({**found, "label": NAMES.get(found.get("name"), found.get("name")), "text": text})
    return out
