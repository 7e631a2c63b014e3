"""The Kubernetes manifests in deploy/k8s: valid against KubeRay's own CRD schemas, and
true to the deployment's rules (credentials only by reference, token auth on every Ray
container, no trials on the head, one shared volume at one path).

The CRDs are KubeRay's own, vendored in tests/fixtures/kuberay-crds (its README gives their
version and license). Nothing here talks to a Kubernetes cluster.
"""
from __future__ import annotations

import copy
import functools
import gzip
import json
import re
import shlex
from typing import Any, Iterator

import jsonschema
import pytest
import yaml
from conftest import ROOT

K8S_DIR = ROOT / "deploy" / "k8s"
CRD_DIR = ROOT / "tests" / "fixtures" / "kuberay-crds"
CRD_FILES = {"RayCluster": "ray.io_rayclusters.yaml.gz", "RayJob": "ray.io_rayjobs.yaml.gz"}
CREDENTIAL_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|API_KEY|ACCESS_KEY|HADOOP_USER", re.IGNORECASE)
HEAD_AVOIDING_RESOURCE = "worker_node"  # what scaling.avoid_head asks for (dltune.launch.ray_cluster)
INT_FORMATS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# --- OpenAPI v3 with Kubernetes extensions -> JSON Schema (draft 4) ---------------------

def to_json_schema(node: dict[str, Any]) -> dict[str, Any]:
    """One structural-schema node as JSON Schema, as strict as the API server.

    Objects with ``properties`` reject unknown fields unless the CRD preserves them:
    the API server prunes those, and `kubectl apply` (strict field validation) refuses
    them, so a typo such as ``minReplica`` must fail here too. Keywords of the OpenAPI
    dialect that jsonschema would misread are translated or dropped; CEL rules
    (x-kubernetes-validations) are not evaluated.
    """
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = to_json_schema(value) if isinstance(value, dict) else value
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [to_json_schema(sub) for sub in value]
        elif key not in ("format", "nullable") and not key.startswith("x-kubernetes-"):
            out[key] = value
    if node.get("format") in INT_FORMATS:
        low, high = INT_FORMATS[node["format"]]
        out.setdefault("minimum", low)
        out.setdefault("maximum", high)
    if node.get("x-kubernetes-int-or-string"):
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in node and "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    if node.get("nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


@functools.cache
def crd_validator(kind: str) -> jsonschema.Draft4Validator:
    crd = yaml.load(gzip.decompress((CRD_DIR / CRD_FILES[kind]).read_bytes()), Loader=Loader)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return jsonschema.Draft4Validator(to_json_schema(version["schema"]["openAPIV3Schema"]))


def schema_errors(doc: dict[str, Any]) -> list[str]:
    errors = crd_validator(doc["kind"]).iter_errors(doc)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


# --- the manifests ----------------------------------------------------------------------

def load_manifests() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{path.name}#{i}", doc)
        for path in sorted(K8S_DIR.glob("*.yaml"))
        for i, doc in enumerate(yaml.safe_load_all(path.read_text()))
        if doc is not None
    ]


MANIFESTS = load_manifests()
RAY_DOCS = [(name, doc) for name, doc in MANIFESTS if doc["kind"] in CRD_FILES]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in MANIFESTS if doc["kind"] == kind]


def cluster_spec(doc: dict[str, Any]) -> dict[str, Any]:
    """The RayCluster spec of a standing cluster, or the one a RayJob creates."""
    return doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]


CLUSTER_SPECS = [(name, cluster_spec(doc)) for name, doc in RAY_DOCS]


def pod_specs(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "head", spec["headGroupSpec"]["template"]["spec"]
    for group in spec.get("workerGroupSpecs", []):
        yield group["groupName"], group["template"]["spec"]


def ray_containers(doc: dict[str, Any]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(where, env) of every container that joins or talks to the Ray cluster."""
    spec = cluster_spec(doc)
    for group, pod in pod_specs(spec):
        for container in pod["containers"]:
            yield f"{group}/{container['name']}", container.get("env", [])
    if spec.get("enableInTreeAutoscaling"):
        yield "autoscaler", spec.get("autoscalerOptions", {}).get("env", [])
    if doc["kind"] == "RayJob" and doc["spec"].get("submissionMode", "K8sJobMode") == "K8sJobMode":
        submitter = doc["spec"].get("submitterPodTemplate")
        assert submitter, "the default submitter has no RAY_AUTH_TOKEN: give a submitterPodTemplate"
        for container in submitter["spec"]["containers"]:
            yield f"submitter/{container['name']}", container.get("env", [])


def env_lists(node: Any) -> Iterator[list[dict[str, Any]]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "env" and isinstance(value, list):
                yield value
            else:
                yield from env_lists(value)
    elif isinstance(node, list):
        for item in node:
            yield from env_lists(item)


def secret_ref(var: dict[str, Any]) -> dict[str, Any] | None:
    return var.get("valueFrom", {}).get("secretKeyRef")


def mounts_by_volume(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    """Volume source name (claim or ConfigMap) -> mountPath in this container."""
    sources = {}
    for volume in pod.get("volumes", []):
        source = volume.get("persistentVolumeClaim", {}).get("claimName") or volume.get("configMap", {}).get("name")
        if source:
            sources[volume["name"]] = source
    return {sources[m["name"]]: m["mountPath"] for m in container.get("volumeMounts", []) if m["name"] in sources}


def shared_mount_paths(spec: dict[str, Any], claim: str) -> dict[str, str | None]:
    """Where each container of the cluster mounts the claim (None: not at all)."""
    return {
        f"{group}/{container['name']}": mounts_by_volume(pod, container).get(claim)
        for group, pod in pod_specs(spec)
        for container in pod["containers"]
    }


def ids(items: list[tuple[str, Any]]) -> list[str]:
    return [name for name, _ in items]


# --- the converter, on small schemas (no CRD needed) -----------------------------------

def check(schema: dict[str, Any], instance: Any) -> bool:
    return jsonschema.Draft4Validator(to_json_schema(schema)).is_valid(instance)


def test_int_or_string() -> None:
    schema = {"x-kubernetes-int-or-string": True, "pattern": "^[0-9]+(Gi|Mi)?$"}
    assert check(schema, 4) and check(schema, "16Gi")
    assert not check(schema, 1.5) and not check(schema, True) and not check(schema, "16 GB")


def test_unknown_fields_rejected_unless_preserved() -> None:
    closed = {"type": "object", "properties": {"minReplicas": {"type": "integer", "format": "int32"}}}
    assert check(closed, {"minReplicas": 1})
    assert not check(closed, {"minReplica": 1})
    assert not check(closed, {"minReplicas": 2**31})
    assert not check({"type": "integer", "minimum": 0, "format": "int32"}, -1)
    assert check({**closed, "x-kubernetes-preserve-unknown-fields": True}, {"minReplica": 1})
    assert check({"type": "object"}, {"anything": 1})
    assert check({"type": "object", "additionalProperties": {"type": "string"}}, {"a": "b"})


def test_nullable_and_openapi_keywords() -> None:
    schema = {"type": "string", "format": "date-time", "nullable": True, "x-kubernetes-list-type": "atomic"}
    assert check(schema, None) and check(schema, "2024-01-01T00:00:00Z")
    assert not check(schema, 3)


# --- schema validation against KubeRay's CRDs ------------------------------------------

def test_every_manifest_parses() -> None:
    assert {"RayCluster", "RayJob", "PersistentVolumeClaim", "ConfigMap", "Secret"} <= {doc["kind"] for _, doc in MANIFESTS}
    for name, doc in MANIFESTS:
        assert doc.get("apiVersion") and doc.get("metadata", {}).get("name"), name


@pytest.mark.parametrize("doc", [doc for _, doc in RAY_DOCS], ids=ids(RAY_DOCS))
def test_matches_kuberay_crd(doc: dict[str, Any]) -> None:
    assert doc["apiVersion"] == "ray.io/v1"
    assert schema_errors(doc) == []


KEEP = object()  # a renamed field keeps its value
BROKEN = {  # name: (path in spec, key to put there, value, expected error)
    "minReplicas-not-integer": (("workerGroupSpecs", 0, "minReplicas"), "minReplicas", "two", "'two' is not of type 'integer'"),
    "misspelled-minReplicas": (("workerGroupSpecs", 0, "minReplicas"), "minReplica", KEEP, "minReplica"),
    "misspelled-rayStartParams": (("headGroupSpec", "rayStartParams"), "rayStartParam", KEEP, "'rayStartParam' was unexpected"),
    "rayStartParams-not-string": (("headGroupSpec", "rayStartParams", "num-cpus"), "num-cpus", 0, "0 is not of type 'string'"),
    "unknown-upscaling-mode": (("autoscalerOptions", "upscalingMode"), "upscalingMode", "Fast", "'Fast' is not one of"),
    "bad-gpu-quantity": (
        ("workerGroupSpecs", 0, "template", "spec", "containers", 0, "resources", "limits", "nvidia.com/gpu"),
        "nvidia.com/gpu", "one", "'one' does not match",
    ),
}


@pytest.mark.parametrize("path,key,value,expected", BROKEN.values(), ids=BROKEN.keys())
def test_broken_raycluster_fails(path: tuple[str | int, ...], key: str, value: Any, expected: str) -> None:
    doc = copy.deepcopy(of_kind("RayCluster")[0])
    node: Any = doc["spec"]
    for step in path[:-1]:
        node = node[step]
    old = node.pop(path[-1])
    node[key] = old if value is KEEP else value
    with pytest.raises(jsonschema.ValidationError, match=re.escape(expected)):
        crd_validator("RayCluster").validate(doc)


def test_broken_rayjob_fails() -> None:
    doc = copy.deepcopy(of_kind("RayJob")[0])
    doc["spec"]["shutdownAfterJobFinishes"] = "yes"
    with pytest.raises(jsonschema.ValidationError, match="'yes' is not of type 'boolean'"):
        crd_validator("RayJob").validate(doc)


# --- deployment rules the CRDs cannot express --------------------------------------------

def test_credentials_only_by_secret_reference() -> None:
    for name, doc in MANIFESTS:
        for env in env_lists(doc):
            for var in env:
                if CREDENTIAL_NAME.search(var["name"]):
                    assert "value" not in var and secret_ref(var), f"{name}: {var['name']} must come from valueFrom.secretKeyRef"


def test_secret_example_holds_keys_only() -> None:
    (secret,) = of_kind("Secret")
    values = {**secret.get("stringData", {}), **secret.get("data", {})}
    assert all(value == "" for value in values.values()), "the example Secret must not hold values"
    refs = {(ref["name"], ref["key"]) for _, doc in RAY_DOCS for env in env_lists(doc) for ref in map(secret_ref, env) if ref}
    assert refs and refs <= {(secret["metadata"]["name"], key) for key in values}


@pytest.mark.parametrize("doc", [doc for _, doc in RAY_DOCS], ids=ids(RAY_DOCS))
def test_token_auth_on_every_ray_container(doc: dict[str, Any]) -> None:
    for where, env in ray_containers(doc):
        by_name = {var["name"]: var for var in env}
        assert by_name.get("RAY_AUTH_MODE", {}).get("value") == "token", where
        assert secret_ref(by_name.get("RAY_AUTH_TOKEN", {})), where


@pytest.mark.parametrize("spec", [spec for _, spec in CLUSTER_SPECS], ids=ids(CLUSTER_SPECS))
def test_head_runs_no_trials_and_stays_internal(spec: dict[str, Any]) -> None:
    head = spec["headGroupSpec"]
    assert head["rayStartParams"].get("num-cpus") == "0" and head["rayStartParams"].get("num-gpus") == "0"
    for container in head["template"]["spec"]["containers"]:
        resources = container.get("resources", {})
        assert not any("gpu" in key for part in resources.values() for key in part), container["name"]
    assert head.get("serviceType", "ClusterIP") == "ClusterIP" and not head.get("enableIngress")


@pytest.mark.parametrize("spec", [spec for _, spec in CLUSTER_SPECS], ids=ids(CLUSTER_SPECS))
def test_gpu_worker_groups(spec: dict[str, Any]) -> None:
    assert spec["workerGroupSpecs"]
    for group in spec["workerGroupSpecs"]:
        # KubeRay hands the value to a shell: '"{\"worker_node\": 1}"' -> {"worker_node": 1}
        (custom,) = shlex.split(group["rayStartParams"]["resources"])
        assert json.loads(custom).get(HEAD_AVOIDING_RESOURCE, 0) > 0, group["groupName"]
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], group["groupName"]
        for container in group["template"]["spec"]["containers"]:
            assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1, group["groupName"]


@pytest.mark.parametrize("spec", [spec for _, spec in CLUSTER_SPECS], ids=ids(CLUSTER_SPECS))
def test_shared_storage_on_every_pod(spec: dict[str, Any]) -> None:
    (claim,) = of_kind("PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    paths = shared_mount_paths(spec, claim["metadata"]["name"])
    assert None not in paths.values() and len(set(paths.values())) == 1, f"shared volume mounts: {paths}"
    (hadoop,) = of_kind("ConfigMap")
    assert {"core-site.xml", "hdfs-site.xml"} <= set(hadoop["data"])
    for group, pod in pod_specs(spec):
        for container in pod["containers"]:
            env = {var["name"]: var.get("value") for var in container.get("env", [])}
            conf_dir = mounts_by_volume(pod, container).get(hadoop["metadata"]["name"])
            assert conf_dir and env.get("HADOOP_CONF_DIR") == conf_dir, f"{group}/{container['name']}"


def test_rayjob_runs_a_search_and_is_torn_down() -> None:
    (claim,) = of_kind("PersistentVolumeClaim")
    for doc in of_kind("RayJob"):
        spec = doc["spec"]
        assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] >= 0
        command = shlex.split(spec["entrypoint"])
        assert command[:2] == ["dltune", "tune"]
        (shared,) = set(shared_mount_paths(spec["rayClusterSpec"], claim["metadata"]["name"]).values())
        assert command[2].startswith(f"{shared}/"), "the config must be on the shared volume"
        assert any(arg.startswith(f"output.dir={shared}/") for arg in command), "outputs must land on the shared volume"
