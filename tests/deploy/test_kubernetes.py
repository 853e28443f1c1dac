"""The Kubernetes manifests, validated offline against Kubernetes' own OpenAPI schemas (strict:
an unknown field is an error) by kubernetes-validate, and what the platform needs of them."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.deploy

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
# The oldest Kubernetes the manifests are written for (securityContext.appArmorProfile: 1.30+).
KUBERNETES_VERSION = "1.31.0"
QUEUES = ("jobs", "platform", "ledger")


def manifests() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


@pytest.fixture(scope="module")
def docs() -> dict[tuple[str, str], dict]:
    found = {}
    for path in manifests():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                key = (doc["kind"], doc["metadata"]["name"])
                assert key not in found or path.name == "secrets.example.yaml", f"{key} twice"
                found[key] = doc
    return found


def validate(doc: dict) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("path", manifests(), ids=lambda p: str(p.relative_to(K8S)))
def test_each_manifest_is_valid_kubernetes(path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs
    for doc in docs:
        validate(doc)


def test_a_broken_manifest_is_refused_by_the_same_validator(docs):
    from kubernetes_validate.utils import ValidationError

    web = copy.deepcopy(docs[("Deployment", "web")])
    web["spec"]["template"]["spec"]["containers"][0]["resources"]["limit"] = {"cpu": "1"}  # not `limits`
    with pytest.raises(ValidationError, match="'limit' was unexpected"):
        validate(web)
    superlink = copy.deepcopy(docs[("StatefulSet", "superlink")])
    superlink["spec"]["replicas"] = "one"
    with pytest.raises(ValidationError, match="'one' is not of type 'integer'"):
        validate(superlink)


def test_kustomization_applies_every_platform_manifest():
    kustomization = yaml.safe_load((K8S / "platform" / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in (K8S / "platform").glob("*.yaml")
                                                         if p.name != "kustomization.yaml")


def pod(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def test_web_replicas_behind_a_service_and_an_ingress_with_tls(docs):
    web = docs[("Deployment", "web")]
    assert web["spec"]["replicas"] > 1
    container = pod(web)["containers"][0]
    assert container["args"] == ["gunicorn", "--config", "platform/miliao/gunicorn_conf.py"]
    service = docs[("Service", "web")]
    assert service["spec"]["selector"] == web["spec"]["selector"]["matchLabels"]
    ingress = docs[("Ingress", "web")]
    assert ingress["spec"]["tls"] and ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "web"


def test_one_worker_deployment_per_queue_and_exactly_one_beat(docs):
    from django.conf import settings

    routed = {r["queue"] for r in settings.CELERY_TASK_ROUTES.values()} | {settings.CELERY_TASK_DEFAULT_QUEUE}
    assert routed == set(QUEUES)
    workers = {name: doc for (kind, name), doc in docs.items() if kind == "Deployment" and name.startswith("worker-")}
    assert set(workers) == {f"worker-{q}" for q in QUEUES}
    for queue in QUEUES:
        args = pod(workers[f"worker-{queue}"])["containers"][0]["args"]
        assert args[:4] == ["celery", "-A", "miliao", "worker"] and args[args.index("--queues") + 1] == queue
    beat = docs[("Deployment", "beat")]
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"]["type"] == "Recreate"
    # Only the jobs worker's jail needs the runtime's seccomp profile off; nothing is privileged.
    unconfined = {name for (kind, name), doc in docs.items() if kind in {"Deployment", "StatefulSet"}
                  and pod(doc).get("securityContext", {}).get("seccompProfile", {}).get("type") == "Unconfined"}
    assert unconfined == {"worker-jobs"}
    for (kind, name), doc in docs.items():
        if kind in {"Deployment", "StatefulSet", "Job"}:
            assert pod(doc)["securityContext"]["runAsNonRoot"] is True, name
            for container in pod(doc)["containers"]:
                assert not container.get("securityContext", {}).get("privileged"), name


def test_stores_and_the_superlink_keep_their_state_on_volumes(docs):
    for name, mount in (("postgres", "/var/lib/postgresql/data"), ("redis", "/data"),
                        ("superlink", "/var/lib/flower"), ("besu", "/opt/besu/data")):
        statefulset = docs[("StatefulSet", name)]
        claims = {c["metadata"]["name"] for c in statefulset["spec"]["volumeClaimTemplates"]}
        mounts = {m["mountPath"]: m["name"] for m in pod(statefulset)["containers"][0]["volumeMounts"]}
        assert mounts[mount] in claims, name
    superlink = pod(docs[("StatefulSet", "superlink")])["containers"][0]["args"]
    assert "--enable-supernode-auth" in superlink and "--insecure" not in superlink
    database = next(a for a in superlink if a.startswith("--database="))
    assert database.startswith("--database=/var/lib/flower/")
    # The platform finds the SuperLink, the chain and the broker through the config map.
    config = docs[("ConfigMap", "miliao-config")]["data"]
    assert config["FLOWER_SUPERLINK"].startswith("superlink.miliao.svc:")
    assert config["CHAIN_RPC_URL"].startswith("http://besu.miliao.svc:")
    # No secret in the config map: they come from the Secret contract.
    secrets = docs[("Secret", "miliao-secrets")]["stringData"]
    assert not set(secrets) & set(config)
    assert {"DJANGO_SECRET_KEY", "MILIAO_MASTER_KEY", "DATABASE_URL", "CHAIN_KEYSTORE_PASSWORD"} <= set(secrets)
    from django.conf import settings

    assert set(settings.PRODUCTION_REQUIRED) <= set(secrets) | set(config)


def test_the_district_node_bundle_asks_for_an_nvidia_gpu_and_only_talks_to_the_superlink(docs):
    node = docs[("Deployment", "supernode")]
    spec = pod(node)
    container = spec["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert spec["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
    assert container["args"][:4] == ["python", "-m", "sandbox.federated.node", "start"]
    assert node["spec"]["strategy"]["type"] == "Recreate"
    policy = docs[("NetworkPolicy", "supernode-egress")]["spec"]
    ports = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
    assert ports == {9092, 53} and policy["ingress"] == []
