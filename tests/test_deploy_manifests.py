"""deploy/: the Compose file, the Kubernetes manifests and the Dockerfile, checked offline.

There is no container engine or cluster here, so each file is checked by the ecosystem's own
validator (the Compose Specification's schema, Kubernetes' API schemas for the kubectl in use,
hadolint), and then for what no schema knows: that every command line is one the harness accepts,
that the master waits for as many workers as run, that ports, names and selectors meet, and that
the target is one the load-target policy lets each process load. A missing validator is a failure,
never a skip: they come with the dev extras (and kubectl with the machine).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from loadtests.__main__ import build_parser as loadtests_parser
from loadtests.__main__ import settings_of
from loadtests._distributed import ALLOW_ENV, MASTER_PORT, allowed_hosts, check_target
from mockllm.__main__ import build_parser as mockllm_parser

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
KUBERNETES_VERSION = "1.32.0"  # the kubectl installed here


def tool(name: str) -> str:
    """A validator from the venv (the dev extras) or the PATH; a clear failure when it is not installed."""
    found = shutil.which(name, path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if found is None:
        pytest.fail(f"{name} is not installed: `pip install -e .[dev]` brings it (kubectl: the machine's own)")
    return found


def validate(*command: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def interpolated(text: str) -> str:
    """Compose's `${NAME:-default}` with every default taken (what `docker compose config` would print)."""

    def default(match: re.Match[str]) -> str:
        if match.group(2) is None:
            raise AssertionError(f"{match.group(0)} has no default: the file must work with no variable set")
        return match.group(2)

    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", default, text)


@pytest.fixture(scope="module")
def compose(tmp_path_factory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("compose") / "compose.yaml"
    path.write_text(interpolated((DEPLOY / "compose.yaml").read_text()))
    document = yaml.safe_load(path.read_text())
    document["_path"] = path
    return document


@pytest.fixture(scope="module")
def kubernetes(tmp_path_factory) -> tuple[Path, list[dict[str, Any]]]:
    built = validate(tool("kubectl"), "kustomize", str(DEPLOY / "k8s"))
    path = tmp_path_factory.mktemp("k8s") / "built.yaml"
    path.write_text(built)
    return path, [document for document in yaml.safe_load_all(built) if document]


def test_the_compose_file_follows_the_compose_specification(compose):
    checker = tool("check-jsonschema")
    validate(checker, "--builtin-schema", "vendor.compose-spec", str(DEPLOY / "compose.yaml"))
    validate(checker, "--builtin-schema", "vendor.compose-spec", str(compose["_path"]))  # with the defaults in
    assert isinstance(compose["services"]["worker"]["deploy"]["replicas"], int)


def test_the_kubernetes_manifests_build_with_kustomize_and_follow_the_api_schemas(kubernetes):
    path, documents = kubernetes
    out = validate(tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, str(path))
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in documents)
    assert kinds == ["Deployment/mock", "Deployment/worker", "Job/master", "Namespace/sse-chat-load",
                     "PersistentVolumeClaim/results", "Service/master", "Service/mock"]  # fmt: skip
    assert out.count("passed for resource") == len(documents)
    for document in documents:
        labels = document["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "sse-chat-harness", document["metadata"]["name"]
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == "sse-chat-load"
            assert {"app.kubernetes.io/name", "app.kubernetes.io/component"} <= labels.keys()


def test_the_dockerfile_passes_hadolint_and_copies_every_package():
    if shutil.which("hadolint"):  # not on PyPI or Debian here; the checks below run everywhere
        validate("hadolint", str(DEPLOY / "Dockerfile"))
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    for pattern in packages["include"]:
        name = pattern.rstrip("*")
        assert re.search(rf"^COPY {name} \./{name}$", dockerfile, re.M), f"the image would miss {name}/"
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M) and "pip install --no-cache-dir ." in dockerfile


def parse(parser_of: Any, command: list[str]) -> Any:
    try:
        return parser_of().parse_args(command)
    except SystemExit:
        raise AssertionError(f"not a command line the harness accepts: {command}") from None


def check_roles(master: list[str], workers: list[str], replicas: int, mock: list[str], allowed: str,
                mock_host: str) -> None:  # fmt: skip
    """What the schemas cannot know: the commands parse, and the pieces fit together."""
    assert master[0] == "loadtests" and workers[0] == "loadtests" and mock[0] == "mockllm"
    master_args = parse(loadtests_parser, master[1:])
    worker_args = parse(loadtests_parser, workers[1:])
    mock_args = parse(mockllm_parser, mock[1:])
    assert (master_args.command, worker_args.command, mock_args.command) == ("master", "worker", "serve")
    settings = settings_of(master_args)  # the profile and the shape exist
    assert master_args.workers == replicas, "the master would wait for workers that never come, or start early"
    assert master_args.port == worker_args.master_port == MASTER_PORT
    assert master_args.bind_host == "0.0.0.0"  # reachable from the workers' pods or containers
    assert settings.json_path.startswith("/results/") and settings.html_path.startswith("/results/")
    target = urlsplit(master_args.target)
    assert (target.hostname, target.port) == (mock_host, mock_args.port) and mock_args.host == "0.0.0.0"
    hosts = allowed_hosts({ALLOW_ENV: allowed})
    assert target.hostname in hosts  # not loopback: every process names the target it loads (no lookup needed)
    check_target(master_args.target, hosts)
    check_target(settings.mock, hosts)


def test_the_compose_services_fit_together(compose):
    services = compose["services"]
    assert set(services) == {"mock", "master", "worker"}
    allowed = {name: s["environment"][ALLOW_ENV] for name, s in services.items()}
    assert allowed["master"] == allowed["worker"]
    check_roles(services["master"]["command"], services["worker"]["command"],
                services["worker"]["deploy"]["replicas"], services["mock"]["command"], allowed["worker"],
                "mock")  # fmt: skip
    assert "/health" in " ".join(services["mock"]["healthcheck"]["test"])
    assert services["master"]["depends_on"]["mock"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["master"]["condition"] == "service_healthy"
    assert "results:/results" in services["master"]["volumes"] and "results" in compose["volumes"]
    assert str(MASTER_PORT) in services["master"]["expose"]
    assert "worker" in " ".join(services["worker"]["command"])
    assert all(s["image"] == services["mock"]["image"] for s in services.values())  # one image, three roles


def test_the_kubernetes_objects_fit_together(kubernetes):
    _, documents = kubernetes
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in documents}

    def container(kind: str, name: str) -> dict[str, Any]:
        (only,) = by_name[(kind, name)]["spec"]["template"]["spec"]["containers"]
        return only

    def env(item: dict[str, Any]) -> dict[str, str]:
        return {pair["name"]: pair["value"] for pair in item.get("env", [])}

    master, worker = container("Job", "master"), container("Deployment", "worker")
    mock = container("Deployment", "mock")
    assert env(master)[ALLOW_ENV] == env(worker)[ALLOW_ENV]
    check_roles(master["command"], worker["command"], by_name[("Deployment", "worker")]["spec"]["replicas"],
                mock["command"], env(worker)[ALLOW_ENV], "mock")  # fmt: skip
    for kind, name, service in (("Job", "master", "master"), ("Deployment", "mock", "mock")):
        pod_labels = by_name[(kind, name)]["spec"]["template"]["metadata"]["labels"]
        selector = by_name[("Service", service)]["spec"]["selector"]
        assert selector.items() <= pod_labels.items(), f"Service/{service} selects no pod of {kind}/{name}"
        (port,) = by_name[("Service", service)]["spec"]["ports"]
        (container_port,) = container(kind, name)["ports"]
        assert port["targetPort"] == container_port["name"]
    assert by_name[("Service", "master")]["spec"]["ports"][0]["port"] == MASTER_PORT
    assert by_name[("Service", "mock")]["spec"]["ports"][0]["port"] == urlsplit(master["command"][3]).port
    worker_labels = by_name[("Deployment", "worker")]["spec"]["template"]["metadata"]["labels"]
    assert not by_name[("Service", "master")]["spec"]["selector"].items() <= worker_labels.items()
    assert mock["readinessProbe"]["httpGet"]["path"] == "/health"
    assert master["startupProbe"]["tcpSocket"]["port"] == "locust"
    job = by_name[("Job", "master")]["spec"]
    assert job["backoffLimit"] == 0 and 0 < job["activeDeadlineSeconds"] <= 3600  # one bounded run
    assert job["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "results"
    for item in (master, worker, mock):
        assert item["resources"]["requests"] and item["resources"]["limits"], item["name"]
        assert item["image"] == "sse-chat-harness:0.1.0"
