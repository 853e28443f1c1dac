"""Node onboarding and what nodes publish, each an action with its lineage event.

A steward registers a district node's public key with the standing SuperLink (`flwr
supernode register`) and can revoke it (`flwr supernode unregister`); the district's data
holder publishes what the catalog needs of the node's partition (schema, counts, coarse
cells, the neighbourhood vocabulary, synthetic mock rows: `python -m sandbox.federated.node
publish`). The SuperLink is changed first; a refusal there changes nothing here."""
from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from accounts.models import Organisation, OrganisationKind
from catalog import rules as catalog_rules
from catalog.models import Dataset, HeldBy
from kernel.errors import Conflict, InvalidInput
from kernel.events import EventType
from provenance.recorder import actor_of, record, subject_of
from sandbox.federated.deploy import FederationError

from . import live, rules
from .models import DistrictNode, NodePartition, NodeStatus

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,59}$")
MANIFEST_KEYS = {"node", "dataset", "device", "units", "kinds", "fields", "cells", "cell_level", "sha256",
                 "neighbourhoods", "mock"}
MOCK_MAX = 1000
CELLS_MAX = 100_000


def _public_key(value) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("public_key", gettext("the node's public key, the line `init` printed"))
    line = value.strip()
    try:
        key = serialization.load_ssh_public_key(line.encode())
    except (ValueError, TypeError):
        raise InvalidInput("public_key", gettext("not an OpenSSH public key (ecdsa-sha2-nistp384 …)")) from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise InvalidInput("public_key", gettext("an EC key (what `python -m sandbox.federated.node init` makes)"))
    return " ".join(line.split()[:2])


def register_node(*, actor, organisation: Organisation, name: str, public_key: str) -> DistrictNode:
    rules.check_manage_nodes(actor)
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidInput("name", gettext("lower-case letters, digits and -, at most 60"))
    if organisation.kind != OrganisationKind.DISTRICT:
        raise InvalidInput("organisation", gettext("%(organisation)s is not a district: nodes are districts' own")
                                           % {"organisation": organisation})
    key = _public_key(public_key)
    known = DistrictNode.objects.filter(public_key=key).first()
    if known is not None:
        if known.status == NodeStatus.REVOKED:
            raise Conflict(gettext("this key was node %(node)s's and was revoked; a revoked key is never registered "
                                   "again: make a new key pair on the node (init) and register that")
                           % {"node": known.name})
        raise Conflict(gettext("this key is already registered, as node %(node)s") % {"node": known.name})
    if DistrictNode.objects.filter(name=name).exists():
        raise InvalidInput("name", gettext("a node named %(name)s is already registered") % {"name": name})
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "node.pub"
        path.write_text(key + "\n")
        try:
            node_id = live.superlink().register(path, name)
        except FederationError as exc:
            raise Conflict(gettext("the SuperLink did not register the key: %(error)s") % {"error": exc}) from None
    try:
        return _record_node(actor, organisation, name, key, node_id)
    except Exception:
        live.superlink().unregister(node_id)  # nothing changed: the SuperLink forgets it too
        raise


@transaction.atomic(durable=True)
def _record_node(actor, organisation, name, key, node_id) -> DistrictNode:
    node = DistrictNode.objects.create(organisation=organisation, name=name, public_key=key,
                                       flower_node_id=node_id, registered_by=actor)
    fingerprint = hashlib.sha256(key.encode()).hexdigest()
    record(EventType.FEDERATION_NODE_REGISTERED, actor=actor_of(actor), subject=subject_of(node),
           payload={"name": name, "organisation": organisation.code, "flower_node_id": node_id,
                    "public_key_sha256": fingerprint})
    return node


def revoke_node(*, actor, node: DistrictNode, reason: str = "") -> DistrictNode:
    rules.check_manage_nodes(actor)
    if node.status == NodeStatus.REVOKED:
        raise Conflict(gettext("node %(node)s is already revoked") % {"node": node.name})
    try:
        live.superlink().unregister(node.flower_node_id)
    except FederationError as exc:
        raise Conflict(gettext("the SuperLink did not unregister node %(node)s: %(error)s")
                       % {"node": node.name, "error": exc}) from None
    with transaction.atomic(durable=True):
        node = DistrictNode.objects.select_for_update().get(pk=node.pk)
        node.status, node.revoked_by, node.revoked_at = NodeStatus.REVOKED, actor, timezone.now()
        node.save(update_fields=["status", "revoked_by", "revoked_at"])
        record(EventType.FEDERATION_NODE_REVOKED, actor=actor_of(actor), subject=subject_of(node),
               payload={"name": node.name, "reason": str(reason)[:500]})
    return node


def _manifest(value) -> dict:
    if not isinstance(value, dict):
        raise InvalidInput("manifest", gettext("the JSON object `python -m sandbox.federated.node publish` writes"))
    extra = set(value) - MANIFEST_KEYS
    if extra:  # never a row, nor anything else the catalog does not need
        raise InvalidInput("manifest", gettext("unexpected keys: %(keys)s") % {"keys": ", ".join(sorted(extra))})
    missing = MANIFEST_KEYS - set(value)
    if missing:
        raise InvalidInput("manifest", gettext("missing: %(keys)s") % {"keys": ", ".join(sorted(missing))})
    if not isinstance(value["units"], int) or value["units"] < 0:
        raise InvalidInput("manifest.units", gettext("a whole number"))
    fields = value["fields"]
    if not (isinstance(fields, list) and fields and all(isinstance(f, dict) and set(f) == {"name", "type"}
                                                         for f in fields)):
        raise InvalidInput("manifest.fields", gettext("a list of {name, type}"))
    if not isinstance(value["cells"], list) or len(value["cells"]) > CELLS_MAX:
        raise InvalidInput("manifest.cells", gettext("a list of at most %(most)s grid cells") % {"most": CELLS_MAX})
    if not isinstance(value["mock"], list) or len(value["mock"]) > MOCK_MAX:
        raise InvalidInput("manifest.mock", gettext("at most %(most)s synthetic rows") % {"most": MOCK_MAX})
    if not isinstance(value["neighbourhoods"], list) or not all(isinstance(h, str) for h in value["neighbourhoods"]):
        raise InvalidInput("manifest.neighbourhoods", gettext("a list of names"))
    if not isinstance(value["sha256"], str) or not re.fullmatch(r"[0-9a-f]{64}", value["sha256"]):
        raise InvalidInput("manifest.sha256", gettext("the partition file's SHA-256"))
    return value


def publish_partition(*, actor, node: DistrictNode, manifest) -> NodePartition:
    rules.check_publish(actor, node)
    manifest = _manifest(manifest)
    if node.status != NodeStatus.REGISTERED:
        raise Conflict(gettext("node %(node)s is revoked: it publishes nothing") % {"node": node.name})
    if manifest["node"] != node.name:
        raise InvalidInput("manifest.node", gettext("this manifest is node %(manifest_node)s's, not %(node)s's")
                                            % {"manifest_node": manifest["node"], "node": node.name})
    dataset = Dataset.objects.filter(slug=manifest["dataset"]).first()
    if dataset is None:
        raise InvalidInput("manifest.dataset", gettext("no dataset '%(dataset)s'") % {"dataset": manifest["dataset"]})
    if dataset.held_by != HeldBy.DISTRICTS:
        raise Conflict(gettext("%(dataset)s is held by its bureau, not by its districts' nodes") % {"dataset": dataset.slug})
    if not dataset.holders.filter(pk=node.organisation_id).exists():
        raise Conflict(gettext("%(organisation)s is not a holder of %(dataset)s")
                       % {"organisation": node.organisation, "dataset": dataset.slug})
    others = NodePartition.objects.filter(dataset=dataset).exclude(node=node).first()
    if others is not None and others.fields != manifest["fields"]:
        names = {f["name"]: f["type"] for f in others.fields}
        differ = [f["name"] for f in manifest["fields"] if names.get(f["name"]) != f["type"]] or \
            sorted(set(names) - {f["name"] for f in manifest["fields"]})
        raise InvalidInput("manifest.fields", gettext("the partition's schema does not match %(dataset)s's "
                                                      "(other nodes' partitions): %(fields)s")
                                              % {"dataset": dataset.slug, "fields": ", ".join(differ[:5])})
    with transaction.atomic(durable=True):
        part, _ = NodePartition.objects.update_or_create(
            node=node, dataset=dataset,
            defaults={k: manifest[k] for k in ("units", "kinds", "fields", "cells", "cell_level", "neighbourhoods",
                                               "sha256", "mock")})
        DistrictNode.objects.filter(pk=node.pk).update(device=str(manifest["device"])[:200])
        version = _catalog_version(actor, dataset)
        record(EventType.FEDERATION_PARTITION_PUBLISHED, actor=actor_of(actor), subject=subject_of(part),
               payload={"node": node.name, "dataset": dataset.slug, "units": part.units, "sha256": part.sha256,
                        "cells": len(part.cells), "mock_rows": len(part.mock), "device": manifest["device"],
                        "corpus_version": version.version},
               inputs=[subject_of(node)])
    return part


def _catalog_version(actor, dataset: Dataset):
    """The district-held dataset's catalog entry as a corpus version made of what its nodes
    published: counts, coarse cells, schema. It has no file: the rows are at the nodes."""
    from corpora.models import CorpusVersion

    parts = list(NodePartition.objects.filter(dataset=dataset).select_related("node").order_by("node__name"))
    kinds: dict[str, int] = {}
    for part in parts:
        for kind, count in part.kinds.items():
            kinds[kind] = kinds.get(kind, 0) + int(count)
    latest = CorpusVersion.objects.filter(dataset=dataset).order_by("-version").first()
    return CorpusVersion.objects.create(
        dataset=dataset, version=(latest.version + 1) if latest else 1,
        source="districts: " + ", ".join(p.node.name for p in parts), source_crs="EPSG:4490",
        units=sum(p.units for p in parts), kinds=kinds, extent=[], cell_level=parts[0].cell_level,
        cells=sorted({c for p in parts for c in p.cells}), fields=parts[0].fields,
        sha256=hashlib.sha256("".join(p.sha256 for p in parts).encode()).hexdigest(), path="", created_by=actor)


@transaction.atomic(durable=True)
def hold_at_districts(*, actor, dataset: Dataset, holders: list[Organisation]) -> Dataset:
    """The dataset's rows are held by its districts' nodes from now on; the platform stores
    none. Only a dataset the bureau holds no rows of yet: a stored corpus would stay here."""
    from corpora.models import CorpusVersion

    catalog_rules.check_manage_dataset(actor, dataset)
    dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
    if dataset.held_by == HeldBy.DISTRICTS:
        raise Conflict(gettext("%(dataset)s is already held by its districts") % {"dataset": dataset.slug})
    if CorpusVersion.objects.filter(dataset=dataset).exists():
        raise Conflict(gettext("the bureau already stores rows of %(dataset)s: register a new dataset for the "
                               "districts to hold") % {"dataset": dataset.slug})
    holders = list(holders)
    if not holders or any(h.kind != OrganisationKind.DISTRICT for h in holders):
        raise InvalidInput("holders", gettext("one or more districts"))
    dataset.held_by = HeldBy.DISTRICTS
    dataset.save(update_fields=["held_by"])
    dataset.holders.set(holders)
    record(EventType.FEDERATION_HELD_BY_DISTRICTS, actor=actor_of(actor), subject=subject_of(dataset),
           payload={"holders": sorted(h.code for h in holders)})
    return dataset
