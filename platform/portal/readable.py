"""What the platform records, put into words a steward, a startup or an auditor reads: event
types and subjects as labels and links, a task's result as sentences, a verification as
a verdict, privacy accounting as a table that says what each ε means, logs without terminal
codes or server paths (kernel.logs). Pages never show the raw dicts these come from."""
from __future__ import annotations

import math
from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from kernel.events import EventType

EVENT_LABELS = dict(EventType.choices)  # what each event type reads as (kernel.events)

# Subjects ("app.model:pk") by what they are, and the page that shows one (by its pk).
SUBJECT_KINDS = {
    "access.application": (gettext_lazy("申请"), None),
    "access.licence": (gettext_lazy("许可"), None),
    "access.download": (gettext_lazy("下载"), None),
    "access.leakfinding": (gettext_lazy("泄露溯源"), None),
    "accounts.user": (gettext_lazy("用户"), None),
    "accounts.organisation": (gettext_lazy("组织"), None),
    "budgets.privacybudget": (gettext_lazy("隐私预算"), "budget-page"),
    "catalog.dataset": (gettext_lazy("数据集"), None),
    "corpora.corpusversion": (gettext_lazy("数据版本"), None),
    "defense.alert": (gettext_lazy("安全告警"), None),
    "federation.districtnode": (gettext_lazy("区节点"), None),
    "federation.nodepartition": (gettext_lazy("节点数据分区"), None),
    "innovation.scenario": (gettext_lazy("场景"), None),
    "innovation.challenge": (gettext_lazy("挑战赛"), None),
    "innovation.team": (gettext_lazy("参赛队"), None),
    "innovation.submission": (gettext_lazy("作品"), None),
    "innovation.showcaseitem": (gettext_lazy("共享成果"), "showcase-page"),
    "jobs.job": (gettext_lazy("作业"), "job-page"),
    "jobs.trainedmodel": (gettext_lazy("模型"), "model-page"),
    "jobs.syftdataset": (gettext_lazy("代码到数据数据集"), None),
    "jobs.sandboxpolicy": (gettext_lazy("沙箱输出规则"), None),
    "releases.release": (gettext_lazy("发布"), "release-page"),
    "releases.releasepolicy": (gettext_lazy("发布规则"), None),
    "ledger.chain": (gettext_lazy("溯源事件链"), None),
    "progress.taskprogress": (gettext_lazy("后台任务"), "task-page"),
}


METRIC_LABELS = {
    "accuracy": gettext_lazy("留出集准确率"),
    "rmse": gettext_lazy("留出集 RMSE（对数月租金）"),
    "rounds": gettext_lazy("联邦轮次"),
    "nodes_last_round": gettext_lazy("最后一轮参与的持有方"),
    "private_rows": gettext_lazy("私有数据行数"),
    "groups_released": gettext_lazy("发布的分组数"),
    "loss": gettext_lazy("损失"),
}


SHIFT_LABELS = {
    "gcj02": gettext_lazy("GCJ-02 公开偏移"),
    "smooth_field": gettext_lazy("带密钥的平滑偏移场"),
    "cell_rigid": gettext_lazy("带密钥的格网刚体平移"),
    "none": gettext_lazy("未偏转"),
}


def applied_shift_label(mode: str) -> str:
    """The shift a release applied, as its report names it (`smooth_field`, ...): not the policy
    form's codes (kernel.texts.shift_label)."""
    label = SHIFT_LABELS.get(mode)
    return str(label) if label is not None else mode


def metric_label(name: str) -> str:
    label = METRIC_LABELS.get(name)
    return str(label) if label is not None else name.replace("_", " ").capitalize()


def event_label(event_type: str) -> str:
    """`accounts.api_token_issued` → "签发 API 令牌" (translated); an unknown type reads as its
    own words ("Some thing happened" from `app.some_thing_happened`)."""
    label = EVENT_LABELS.get(event_type)
    if label is not None:
        return str(label)
    words = event_type.partition(".")[2] or event_type
    return words.replace("_", " ").capitalize()


@dataclass(frozen=True)
class SubjectLink:
    text: str
    url: str


def subject_link(subject: str) -> SubjectLink:
    """`releases.release:3` → "发布 #3" linking to the release's page; a subject without a page
    of its own links to its lineage."""
    kind, _sep, ident = subject.partition(":")
    name, page = SUBJECT_KINDS.get(kind, (None, None))
    if name is None:
        name = kind.rpartition(".")[2].replace("_", " ").capitalize() or subject
    text = f"{name} #{ident}" if ident and ident != "head" else str(name)
    url = ""
    if page:
        try:
            url = reverse(page, kwargs={"pk": ident})
        except NoReverseMatch:
            url = ""
    if not url:
        from urllib.parse import quote

        url = f"{reverse('lineage')}?subject={quote(subject)}"
    return SubjectLink(text, url)


def actor_label(actor: str) -> str:
    """`user:3:alice` → "alice"; `system` → the platform."""
    if actor == "system" or not actor:
        return _("平台")
    if actor.startswith("user:"):
        return actor.split(":", 2)[-1]
    return actor


def verification_summary(result: dict) -> dict:
    """A finished chain verification as a verdict: how many events, the head, and the latest
    anchor on the chain that covers them (or what failed, where)."""
    from provenance.models import Anchor, AnchorStatus

    checked, head = result.get("checked", 0), result.get("head_seq", 0)
    tamper = result.get("tamper")
    if result.get("ok"):
        anchor = (Anchor.objects.filter(status=AnchorStatus.CONFIRMED, last_seq__lte=head)
                  .select_related("registry").order_by("-last_seq").first())
        text = _("已核验 %(n)s 个事件（至 #%(head)s），哈希链完整，未发现篡改。") % {"n": checked, "head": head}
        if anchor is not None:
            text += " " + _("其中 #1–#%(last)s 已锚定在链 %(chain)s 的区块 %(block)s 中，与链上默克尔根一致。") % {
                "last": anchor.last_seq, "chain": anchor.registry.chain_id, "block": anchor.block_number}
        else:
            text += " " + _("尚无事件锚定上链，只核验了哈希链本身。")
        return {"ok": True, "text": text}
    kinds = {"edited": _("被修改"), "deleted": _("被删除"), "inserted": _("被插入"), "reordered": _("被调换顺序")}
    what = kinds.get((tamper or {}).get("kind"), (tamper or {}).get("kind") or _("不一致"))
    text = _("核验未通过：事件 #%(seq)s %(what)s。此前的 %(n)s 个事件链接正确。") % {
        "seq": (tamper or {}).get("seq", "?"), "what": what, "n": checked}
    return {"ok": False, "text": text, "detail": (tamper or {}).get("message", "")}


def _fmt_epsilon(value) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "—"
    return f"{value:.3g}" if value < 1000 else f"{value:,.0f}"


# Above this, an ε promises nothing a reader could use: e^ε is beyond any odds anyone
# reasons with (e^20 ≈ 5×10^8).
MEANINGLESS_EPSILON = 20.0


def privacy_rows(privacy: dict) -> list[dict]:
    """The privacy accounting of a job as rows (what, figure, what it means); raw accountant
    state (noise multipliers per node, histories, specs) is left out."""
    rows = []
    if not privacy:
        return rows
    mechanism = privacy.get("mechanism")
    if mechanism:
        rows.append({"what": _("机制"), "value": mechanism, "meaning": ""})
    record = privacy.get("record_level_epsilon", privacy.get("epsilon"))
    d = privacy.get("delta")
    if str(mechanism or "").startswith("none"):
        rows.append({"what": _("说明"), "value": "",
                     "meaning": _("输出未做差分隐私处理，由数据管理员审核后发布；按数据集的沙箱规则计入本作业的 ε。")})
        return rows
    holder = privacy.get("holder_level") or {}
    holder_eps = holder.get("epsilon")
    if record is None and holder_eps is not None and float(holder_eps) <= MEANINGLESS_EPSILON:
        record = holder_eps  # a record is part of its holder's data: the holder's guarantee covers it
    if record is not None:
        rows.append({"what": _("每条记录的 ε"), "value": f"{_fmt_epsilon(record)} (δ {d})",
                     "meaning": _("任何一条记录（一个房间）在不在训练数据中，输出的分布最多相差 e^ε 倍（另有 δ 的失效概率）。ε 越小，越难从结果推断某条记录。")})
    if holder_eps is not None:
        if float(holder_eps) <= MEANINGLESS_EPSILON:
            rows.append({"what": _("每个数据持有方的 ε"), "value": _fmt_epsilon(holder_eps),
                         "meaning": _("一个持有方（一个区）的全部数据在不在联邦中，聚合结果最多相差 e^ε 倍。")})
        else:
            rows.append({"what": _("每个数据持有方的 ε"), "value": _("无实际保护"),
                         "meaning": _("聚合时只加了很小的噪声（噪声乘数 %(noise)s），持有方整体参与与否不受保护；保护来自每个持有方本地的逐记录差分隐私（上一行）。") % {
                             "noise": holder.get("noise_multiplier")}})
    if privacy.get("steps"):
        rows.append({"what": _("训练步数"), "value": str(privacy["steps"]),
                     "meaning": _("每一步都按采样率 %(rate)s 抽样、裁剪梯度并加噪声，ε 按所有步累计。") % {
                         "rate": _fmt_epsilon(privacy.get("sample_rate"))}})
    if privacy.get("groups_released") is not None:
        rows.append({"what": _("发布的分组数"), "value": str(privacy["groups_released"]),
                     "meaning": _("含噪声计数低于阈值的分组不发布，所以只有少数记录的分组不会出现。")})
    if privacy.get("note"):
        rows.append({"what": _("说明"), "value": "", "meaning": privacy["note"]})
    return rows


def device_label(device: str) -> str:
    """`cpu` → CPU, `cuda:<GPU>` → GPU · <GPU>, as the node reported it; "" before it reports."""
    if not device:
        return ""
    if device == "cpu":
        return "CPU"
    kind, _sep, name = device.partition(":")
    return f"GPU · {name}" if kind == "cuda" and name else device


def holder_rows(outcome: dict, privacy: dict) -> list[dict]:
    """Each district node's part in a federated job: the device it trained on, its training
    throughput (rows a second, its last round's) and its per-record ε."""
    nodes = (privacy or {}).get("nodes") or {}
    rows = []
    for name, figures in sorted(((outcome or {}).get("holders") or {}).items()):
        epsilon = (nodes.get(name) or {}).get("epsilon")
        rows.append({"node": name, "device": device_label(str(figures.get("device") or "")),
                     "rows_per_s": _number(round(float(figures.get("rows_per_s") or 0))),
                     "epsilon": _fmt_epsilon(epsilon)})
    return rows


def _number(value) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "—"
    return f"{value:,}" if isinstance(value, int) else str(value)


def task_summary(task) -> dict:
    """A finished task's result as sentences (`lines`) and a verdict for verifications; never
    its raw dict (an ingest's result holds the server's file path)."""
    result = task.result or {}
    if not result:
        return {"lines": []}
    if task.kind == "ledger.verify_events" or "tamper" in result:
        verdict = verification_summary(result)
        return {"lines": [verdict["text"]], "ok": verdict["ok"], "detail": verdict.get("detail", "")}
    lines = []
    if "corpus_version" in result:  # an ingest
        kinds = ", ".join(f"{k} {_number(n)}" for k, n in sorted((result.get("kinds") or {}).items()))
        lines.append(_("已导入第 %(version)s 版：%(units)s 个单元（%(kinds)s），坐标系 %(crs)s。") % {
            "version": result.get("version"), "units": _number(result.get("units", 0)), "kinds": kinds,
            "crs": result.get("source_crs", "")})
    elif "units_in" in result:  # a release
        lines.append(_("发布已生成：输入 %(units_in)s 个单元，输出 %(units_out)s 个，用时 %(seconds)s 秒。") % {
            "units_in": _number(result.get("units_in")), "units_out": _number(result.get("units_out")),
            "seconds": result.get("seconds")})
    else:
        lines.append(_("任务已完成。"))
    return {"lines": lines}
