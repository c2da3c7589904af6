"""deploy/kubernetes without a cluster: every manifest and rendered overlay validated offline
against the Kubernetes API schemas (kubernetes-validate), a broken copy refused, every SKIPFOLD_*
variable one that `skipfold serve` reads, and the server started with exactly the Deployment's
environment and arguments, answering its probes on the ports and paths the manifests name."""

import copy
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import kubernetes_validate
import pytest
import yaml

from skipfold.service.app import GRACE_S
from skipfold.service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
VERSION = "1.32"  # the Kubernetes release the manifests are checked against
KUBECTL = shutil.which("kubectl")
# under CI (which installs it) a missing kubectl fails these tests instead of skipping them
needs_kubectl = pytest.mark.skipif(
    not KUBECTL and not os.environ.get("CI"),
    reason="needs kubectl to render the kustomizations",
)
STANDALONE = sorted(
    p
    for p in KUBERNETES.rglob("*.yaml")
    if p.name != "kustomization.yaml" and "overlays" not in p.parts  # overlays hold patches
)


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def rendered(folder: str) -> list[dict]:
    result = subprocess.run(
        [KUBECTL, "kustomize", str(KUBERNETES / folder)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def validate(document: dict) -> None:
    """The Kubernetes API schema of the document's kind, strictly (no unknown fields). KServe's
    InferenceService is not in the bundled schemas: its containers are validated as a Pod's."""
    if document["apiVersion"].startswith("serving.kserve.io/"):
        assert document["kind"] == "InferenceService" and document["metadata"]["name"]
        predictor = document["spec"]["predictor"]
        containers = predictor.get("containers") or [
            {"name": "kserve-container", "image": "triton", **_model_fields(predictor["model"])}
        ]
        document = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": document["metadata"]["name"]},
            "spec": {"containers": containers},
        }
    kubernetes_validate.validate(document, VERSION, strict=True)


def _model_fields(model: dict) -> dict:
    assert model["modelFormat"]["name"] and model["storageUri"].startswith("pvc://")
    return {"resources": model["resources"]}


def the_deployment(documents_: list[dict]) -> dict:
    return next(d for d in documents_ if d["kind"] == "Deployment")


@pytest.mark.parametrize("path", STANDALONE, ids=lambda p: str(p.relative_to(KUBERNETES)))
def test_each_manifest_validates_offline(path):
    for document in documents(path):
        validate(document)


@needs_kubectl
@pytest.mark.parametrize("folder", ["base", "overlays/gpu"])
def test_each_rendered_overlay_validates_offline(folder):
    kinds = []
    for document in rendered(folder):
        validate(document)
        kinds.append(document["kind"])
    assert sorted(kinds) == [
        "Deployment", "HorizontalPodAutoscaler", "Job", "PersistentVolumeClaim",
        "PodDisruptionBudget", "Service",
    ]  # fmt: skip
    if folder == "overlays/gpu":
        container = the_deployment(rendered(folder))["spec"]["template"]["spec"]["containers"][0]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert {"name": "SKIPFOLD_DEVICE", "value": "cuda"} in container["env"]
        assert container["image"].endswith("skipfold-api-gpu:latest")


def test_a_wrong_field_is_refused():
    deployment = the_deployment(documents(KUBERNETES / "base" / "api-deployment.yaml"))
    validate(deployment)
    misspelled = copy.deepcopy(deployment)
    container = misspelled["spec"]["template"]["spec"]["containers"][0]
    container["readinessprobe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessprobe"):
        validate(misspelled)
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError, match="two"):
        validate(wrong_type)


def _skipfold_variables() -> list[tuple[str, str, str]]:
    """(where, name, value) of every SKIPFOLD_* variable the deployment files set."""
    found = []
    for path in [
        *STANDALONE,
        ROOT / "docker-compose.yml",
        KUBERNETES / "overlays/gpu/api-gpu.yaml",
    ]:
        for document in documents(path):
            for container in _containers(document):
                for variable in container.get("env") or []:
                    if isinstance(variable, dict) and variable["name"].startswith("SKIPFOLD_"):
                        found.append((path.name, variable["name"], variable.get("value", "")))
                for name, value in (container.get("environment") or {}).items():
                    found.append((path.name, name, str(value)))
    return found


def _containers(document: dict) -> list[dict]:
    if "services" in document:  # docker-compose.yml
        return list(document["services"].values())
    spec = document.get("spec", {})
    spec = spec.get("predictor", spec.get("template", {}).get("spec", spec))
    return spec.get("containers", [])


def test_every_skipfold_variable_is_a_setting_the_server_reads():
    """pydantic-settings ignores a variable it does not know: a typo would change nothing,
    silently (docker-compose.yml set SKIPFOLD_THREADS, which no setting reads, until this test)."""
    variables = _skipfold_variables()
    assert len(variables) > 10
    known = {f"SKIPFOLD_{name.upper()}" for name in Settings.model_fields}
    known |= {"SKIPFOLD_CACHE"}  # the trainer's cache folder (skipfold.common.io)
    assert [v for v in variables if v[1] not in known] == []


def test_every_value_is_one_the_server_accepts(monkeypatch, tmp_path):
    for where, name, value in _skipfold_variables():
        if name in ("SKIPFOLD_CACHE", "SKIPFOLD_REPOSITORY"):
            continue
        monkeypatch.setenv(name, value)
        try:
            Settings(repository=tmp_path)
        except ValueError as exc:
            pytest.fail(f"{where}: {name}={value!r} is refused: {exc}")
        monkeypatch.delenv(name)


def _start_as_deployed(container: dict, repo: Path, tmp_path: Path) -> tuple:
    """`skipfold serve` with the container's arguments and exactly its environment, the
    repository volume laid out as the container mounts it; (process, environment)."""
    mount = next(m for m in container["volumeMounts"] if m["name"] == "models")["mountPath"]
    local = str(tmp_path / mount.strip("/"))
    environment = {v["name"]: v["value"] for v in container["env"]}
    inside = environment["SKIPFOLD_REPOSITORY"]
    assert inside.startswith(mount + "/")
    shutil.copytree(repo, local + inside[len(mount) :])
    environment["SKIPFOLD_REPOSITORY"] = local + inside[len(mount) :]
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("SKIPFOLD_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "skipfold", "serve", *container.get("args", [])],
        env={**inherited, **environment},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    return process, environment


def _wait_for_startup(process: subprocess.Popen, container: dict, ports: dict) -> str:
    """Poll the startup probe as the kubelet would, within its budget; the server's URL."""
    startup = container["startupProbe"]
    budget = startup["periodSeconds"] * startup["failureThreshold"]
    url = f"http://127.0.0.1:{ports[startup['httpGet']['port']]}"
    deadline = time.monotonic() + budget
    while True:
        assert process.poll() is None, process.stdout.read()
        try:
            if httpx.get(url + startup["httpGet"]["path"], timeout=1).status_code == 200:
                return url
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "not ready within the startup probe's budget"
        time.sleep(0.2)


@pytest.mark.e2e
@needs_kubectl
def test_the_deployment_s_server_answers_its_probes(repo, tmp_path):
    import tritonclient.grpc as triton_grpc

    documents_ = rendered("base")
    pod = the_deployment(documents_)["spec"]["template"]
    container = pod["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for port in ports.values():  # the manifest's own ports, as the probes name them
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                pytest.skip(f"port {port} is taken on this machine by another process")
    process, environment = _start_as_deployed(container, repo, tmp_path)
    try:
        url = _wait_for_startup(process, container, ports)
        for probe in ("readinessProbe", "livenessProbe"):
            get = container[probe]["httpGet"]
            answer = httpx.get(f"http://127.0.0.1:{ports[get['port']]}{get['path']}")
            assert answer.status_code == 200, probe
        annotations = pod["metadata"]["annotations"]
        port, path = annotations["prometheus.io/port"], annotations["prometheus.io/path"]
        metrics = httpx.get(f"http://127.0.0.1:{port}{path}")
        assert metrics.status_code == 200 and "skipfold_requests" in metrics.text
        service = next(d for d in documents_ if d["kind"] == "Service")
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports)
        grpc = triton_grpc.InferenceServerClient(f"127.0.0.1:{ports['grpc']}")
        assert grpc.is_server_ready() and grpc.is_model_ready("bn")
        grpc.close()

        # the shutdown fits the grace period: preStop, then the server's delay and drain
        pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        delay = float(environment["SKIPFOLD_SHUTDOWN_DELAY_S"])
        assert pod["spec"]["terminationGracePeriodSeconds"] >= pre_stop + delay + GRACE_S
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        ready = httpx.get(f"{url}/v2/health/ready")
        assert ready.status_code == 503  # out of the Service at once, still answering
        assert process.wait(timeout=delay + GRACE_S) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
