"""Errors that actions raise. Views turn them into a 400/403/409 answer or a page message.

Messages are written for people and translated where they are raised (`gettext` with named
placeholders), in the language of the request that ran the action; what a client reads by
machine stays fixed: the status, and for `InvalidInput` the field's name (`{"<field>": [message]}`)."""
from __future__ import annotations

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

# How a message names the fields people fill in (a client reads the field's own name, the key
# of `as_data()`); a field not listed here is named as it is.
FIELD_LABELS = {
    "purpose": gettext_lazy("用途说明"), "purpose_category": gettext_lazy("用途类别"), "reason": gettext_lazy("理由"),
    "dataset": gettext_lazy("数据集"), "datasets": gettext_lazy("数据集"), "title": gettext_lazy("标题"),
    "description": gettext_lazy("描述"), "theme": gettext_lazy("主题"), "keywords": gettext_lazy("关键词"),
    "slug": gettext_lazy("标识"), "duration_days": gettext_lazy("许可期限（天）"), "people": gettext_lazy("使用人员"),
    "fields": gettext_lazy("字段"), "area": gettext_lazy("区域"), "format": gettext_lazy("格式"),
    "file": gettext_lazy("文件"), "note": gettext_lazy("处理说明"), "username": gettext_lazy("用户名"),
    "password": gettext_lazy("密码"), "role": gettext_lazy("角色"), "organisation": gettext_lazy("组织"),
    "code": gettext_lazy("代码"), "name": gettext_lazy("名称"), "kind": gettext_lazy("类型"),
    "epsilon": gettext_lazy("隐私预算 ε"), "delta": gettext_lazy("δ"), "download_limit": gettext_lazy("下载次数上限"),
    "release": gettext_lazy("发布"), "policy": gettext_lazy("发布规则"), "task": gettext_lazy("任务"),
    "corpus": gettext_lazy("数据版本"), "rooms": gettext_lazy("房间数"), "seed": gettext_lazy("随机种子"),
    "summary": gettext_lazy("简介"), "licence": gettext_lazy("许可"), "entry": gettext_lazy("记录"),
}


class ActionError(Exception):
    """An action refused to run; nothing was written."""

    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def as_data(self) -> dict:
        return {"detail": self.message}


class InvalidInput(ActionError):
    """A named field of the request is wrong."""

    def __init__(self, field: str, message: str):
        label = FIELD_LABELS.get(field, field)
        super().__init__(_("%(field)s: %(message)s") % {"field": label, "message": message})
        self.field = field
        self.field_message = message

    def as_data(self) -> dict:
        return {self.field: [self.field_message]}


class Refused(ActionError):
    """The actor's role or organisation does not allow this."""

    status = 403


class Conflict(ActionError):
    """The object is not in a state that allows this (already decided, say)."""

    status = 409
