"""Smoke test of the real test control plane (etcd + kube-apiserver built from Go modules).

It fails, never skips, when the binaries cannot be built or the control plane
does not start: the rest of the e2e suite depends on it.
"""

from __future__ import annotations

import json
import ssl
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> `controlplane`

from controlplane.cluster import ControlPlane, build_binaries  # noqa: E402

# A cold build of the binaries takes ~15-25 minutes on 2 cores; later runs reuse the cache.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

CRD_GROUP = "smoke.goreports.test"
CRD_PLURAL = "widgets"
CRD_NAME = f"{CRD_PLURAL}.{CRD_GROUP}"

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": CRD_NAME},
    "spec": {
        "group": CRD_GROUP,
        "scope": "Namespaced",
        "names": {"plural": CRD_PLURAL, "singular": "widget", "kind": "Widget"},
        "versions": [{
            "name": "v1",
            "served": True,
            "storage": True,
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {
                    "type": "object",
                    "required": ["size"],
                    "properties": {"size": {"type": "integer", "minimum": 1}},
                }},
            }},
        }],
    },
}


@pytest.fixture(scope="module")
def cp() -> Iterator[ControlPlane]:
    bin_dir = build_binaries()  # raises (-> error, not skip) if it cannot be built
    with ControlPlane(bin_dir) as plane:
        yield plane


def test_kubectl_reports_server_version(cp: ControlPlane) -> None:
    out = json.loads(cp.kubectl("version", "--output=json").stdout)
    server = out["serverVersion"]
    assert server["gitVersion"].startswith("v1."), server
    assert server["gitVersion"] == out["clientVersion"]["gitVersion"]
    assert cp.server_version()["gitVersion"] == server["gitVersion"]


def test_admin_token_works(cp: ControlPlane) -> None:
    """The static admin token authenticates without the client cert."""
    req = urllib.request.Request(
        f"{cp.server}/apis/authentication.k8s.io/v1/selfsubjectreviews",
        data=json.dumps({"apiVersion": "authentication.k8s.io/v1",
                         "kind": "SelfSubjectReview"}).encode(),
        headers={"Authorization": f"Bearer {cp.token}", "Content-Type": "application/json"},
        method="POST",
    )
    ctx = ssl.create_default_context(cafile=str(cp.ca_file))
    with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
        user = json.loads(resp.read())["status"]["userInfo"]
    assert "system:masters" in user["groups"]


def test_crd_and_custom_object(cp: ControlPlane, tmp_path: Path) -> None:
    crd_file = tmp_path / "crd.yaml"
    crd_file.write_text(json.dumps(CRD))
    cp.apply(crd_file)
    cp.wait_for_crd(CRD_NAME)

    widget = {
        "apiVersion": f"{CRD_GROUP}/v1",
        "kind": "Widget",
        "metadata": {"name": "w1", "namespace": "default"},
        "spec": {"size": 3},
    }
    # Discovery of a just-established CRD can lag a moment behind.
    deadline = time.monotonic() + 90
    while True:
        res = cp.kubectl("create", "-f", "-", input=json.dumps(widget), check=False)
        if res.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert res.returncode == 0, res.stderr

    got = json.loads(cp.kubectl("get", f"{CRD_PLURAL}.{CRD_GROUP}", "w1", "-n", "default",
                                "-o", "json").stdout)
    assert got["spec"] == {"size": 3}
    assert got["metadata"]["uid"]

    # The schema is enforced by the real API server.
    bad = dict(widget, metadata={"name": "w2", "namespace": "default"}, spec={"size": 0})
    res = cp.kubectl("create", "-f", "-", input=json.dumps(bad), check=False)
    assert res.returncode != 0
    assert "spec.size" in res.stderr


def test_namespace_can_be_created(cp: ControlPlane) -> None:
    cp.kubectl("create", "namespace", "smoke-ns")
    got = json.loads(cp.kubectl("get", "namespace", "smoke-ns", "-o", "json").stdout)
    assert got["status"]["phase"] == "Active"


def test_controller_manager_collects_owned_objects(cp: ControlPlane) -> None:
    """With kube-controller-manager, owned objects are garbage-collected."""
    cp.start_controller_manager()
    cp.kubectl("create", "namespace", "smoke-gc")
    cp.kubectl("create", "configmap", "parent", "-n", "smoke-gc")
    uid = cp.kubectl("get", "configmap", "parent", "-n", "smoke-gc",
                     "-o", "jsonpath={.metadata.uid}").stdout
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "child",
            "namespace": "smoke-gc",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "parent", "uid": uid},
            ],
        },
    }
    cp.kubectl("create", "-f", "-", input=json.dumps(child))
    cp.kubectl("delete", "configmap", "parent", "-n", "smoke-gc")
    # The garbage collector acts only once its informers have synced: slow on a loaded machine.
    deadline = time.monotonic() + 180
    while cp.kubectl("get", "configmap", "child", "-n", "smoke-gc",
                     check=False).returncode == 0:
        assert time.monotonic() < deadline, cp.logs("kube-controller-manager")
        time.sleep(0.5)
    # The serviceaccount controller runs too.
    deadline = time.monotonic() + 90
    while cp.kubectl("get", "serviceaccount", "default", "-n", "smoke-gc",
                     check=False).returncode != 0:
        assert time.monotonic() < deadline, cp.logs("kube-controller-manager")
        time.sleep(0.5)
