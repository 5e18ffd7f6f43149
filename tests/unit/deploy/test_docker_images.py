"""docker/site.Dockerfile and docker/coordinator.Dockerfile, read as text, and their helpers."""

from __future__ import annotations

import importlib.util
import re
import socket
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOCKER = ROOT / "docker"
DOCKERFILES = {"site": DOCKER / "site.Dockerfile", "coordinator": DOCKER / "coordinator.Dockerfile"}
#: The images with PyTorch (genofed[train]): the coordinator and the site-train image.
TORCH_DOCKERFILES = {
    "coordinator": DOCKER / "coordinator.Dockerfile",
    "site-train": DOCKER / "site-train.Dockerfile",
}
SHARED = re.compile(r"# --- shared with .*?# --- end of the shared part ---", re.S)


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docker_{name}", DOCKER / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_dockerfile__runs_as_an_unprivileged_user(image: str) -> None:
    users = [args for kw, args in _instructions(DOCKERFILES[image]) if kw == "USER"]
    assert users, "no USER instruction"
    assert users[-1].split(":")[0] not in ("root", "0"), users[-1]
    assert users[-1] == "${GENOFED_UID}:${GENOFED_UID}"
    assert ("ARG", "GENOFED_UID=10001") in _instructions(DOCKERFILES[image])


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_dockerfile__base_image_is_a_build_argument_defaulting_to_slim_python(image: str) -> None:
    steps = _instructions(DOCKERFILES[image])
    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.11-slim-bookworm")
    assert steps[1] == ("FROM", "${BASE_IMAGE}")
    assert [kw for kw, _ in steps].count("FROM") == 1


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_dockerfile__has_a_health_check_and_an_entrypoint(image: str) -> None:
    steps = dict(_instructions(DOCKERFILES[image]))
    assert f"/usr/local/lib/genofed/{image}_health.py" in steps["HEALTHCHECK"]
    assert steps["HEALTHCHECK"].split("CMD", 1)[0].count("--") >= 3
    assert steps["ENTRYPOINT"] in ('["genofed-site"]', '["genofed"]')


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_dockerfile__extra_ca_certs_are_a_build_input(image: str) -> None:
    steps = _instructions(DOCKERFILES[image])
    assert ("COPY", "${EXTRA_CA_CERTS}/ /usr/local/share/ca-certificates/genofed-extra/") in steps
    install = next(args for kw, args in steps if kw == "RUN" and "pip install" in args)
    assert "-c constraints.txt" in install and "update-ca-certificates" not in install


@pytest.mark.parametrize("image", sorted(TORCH_DOCKERFILES))
def test_torch_images__take_the_cpu_wheel_from_wheels_and_refuse_cuda(image: str) -> None:
    steps = _instructions(TORCH_DOCKERFILES[image])
    assert ("COPY", "${WHEELS}/ /tmp/genofed-build/wheels/") in steps
    install = next(args for kw, args in steps if kw == "RUN" and "--find-links" in args)
    assert "requirements.py pyproject.toml . " in install and " train;" in install
    assert "-c constraints.txt" in install and "--find-links wheels" in install
    assert "nvidia-" in install  # the build fails if CUDA libraries got in
    assert "import torch, opacus" in install


def test_site_image__has_no_torch_and_no_wheels_layer() -> None:
    """The default site image leaves out genofed[train]: no wheel directory is copied in
    (a COPY is a layer even when a later RUN deletes it) and no extra is installed."""
    steps = _instructions(DOCKERFILES["site"])
    assert not [a for kw, a in steps if kw == "COPY" and "WHEELS" in a]
    assert not [a for kw, a in steps if kw == "RUN" and "requirements.py pyproject.toml . " in a]
    train = _instructions(TORCH_DOCKERFILES["site-train"])
    assert ("FROM", "${SITE_IMAGE}") in train and train[-1] == (
        "USER",
        "${GENOFED_UID}:${GENOFED_UID}",
    )


def test_dockerfiles__share_one_cacheable_prefix() -> None:
    site = SHARED.search(DOCKERFILES["site"].read_text(encoding="utf-8"))
    coordinator = SHARED.search(DOCKERFILES["coordinator"].read_text(encoding="utf-8"))
    assert site and coordinator
    strip = re.compile(r"^# --- shared with .*$", re.M)
    assert strip.sub("", site[0]) == strip.sub("", coordinator[0])


def test_site_dockerfile__publishes_no_port_and_keeps_state_on_a_volume() -> None:
    steps = _instructions(DOCKERFILES["site"])
    assert not [args for kw, args in steps if kw == "EXPOSE"]
    assert ("VOLUME", '["/srv/genofed/site"]') in steps
    assert ("EXPOSE", "9092") in _instructions(DOCKERFILES["coordinator"])


def test_requirements__pins_torch_to_its_cpu_build_only_with_train() -> None:
    requirements = _load("requirements")
    deps, constraints = requirements.pip_inputs(ROOT / "pyproject.toml", ["train"])
    torch = [d for d in deps if d.startswith("torch==")]
    assert len(torch) == 1
    assert constraints == [f"{torch[0]}+cpu"]
    base, none = requirements.pip_inputs(ROOT / "pyproject.toml")
    assert none == [] and not [d for d in base if d.startswith(("torch", "opacus"))]


def test_requirements__refuses_a_torch_range(tmp_path: Path) -> None:
    requirements = _load("requirements")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\ndependencies = ["torch>=2", "numpy==2"]\n')
    with pytest.raises(ValueError, match="exact torch pin"):
        requirements.pip_inputs(pyproject)
    assert requirements.main([str(pyproject), str(tmp_path)]) == 2
    assert not (tmp_path / "constraints.txt").exists()


# /proc/net/tcp and tcp6 as Linux writes them: local, remote (hex, little-endian words), state
_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:9AF6 00000000:0000 0A 00000000:00000000 00:00000000 00000000 10001 0 1 1
   1: 0300120A:D3C2 0200120A:2384 01 00000000:00000000 00:00000000 00000000 10001 0 2 1
   2: 0300120A:D3C4 0200120A:2385 06 00000000:00000000 00:00000000 00000000 10001 0 3 1
"""
_TCP6 = """\
  sl  local_address                         remote_address                        st
   0: 0000000000000000FFFF00000300120A:D3C8 0000000000000000FFFF00000400120A:2384 01 0
"""


def test_site_health__reads_established_peers_from_proc_net_tcp() -> None:
    health = _load("site_health")
    peers = health.established_peers([_TCP, _TCP6])
    assert peers == {("10.18.0.2", 9092), ("10.18.0.4", 9092)}  # LISTEN, TIME_WAIT left out


def test_site_health__connected_only_to_the_fleet_api_it_reports() -> None:
    health = _load("site_health")
    assert health.connected_to("127.0.0.1:9092", {("127.0.0.1", 9092)})
    assert not health.connected_to("127.0.0.1:9092", {("127.0.0.1", 9093)})
    assert not health.connected_to("127.0.0.1:9092", set())
    assert not health.connected_to("no-such-host.invalid:9092", {("127.0.0.1", 9092)})


def test_site_health__names_the_processes_that_are_missing() -> None:
    health = _load("site_health")
    supernode = "/opt/genofed/bin/python /opt/genofed/bin/flower-supernode --grpc-rere"
    gate = "/opt/genofed/bin/python -m genofed.site_agent.node.appgate --site-dir /srv/genofed/site"
    assert health.missing_processes([supernode, gate]) == []
    assert health.missing_processes([supernode]) == ["app gate"]
    assert health.missing_processes([]) == ["SuperNode", "app gate"]


def test_site_health__unhealthy_without_a_running_agent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    health = _load("site_health")
    assert health.main([str(tmp_path)]) == 1
    assert capsys.readouterr().out.startswith("unhealthy: no site admin service answers")


def test_coordinator_health__unhealthy_when_nothing_listens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from genofed.common.pki import init_pki

    health = _load("coordinator_health")
    pki = init_pki(tmp_path / "certs", coordinator_host="127.0.0.1", sites=[])
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "coordinator.toml"
    config.write_text(
        f'[coordinator]\nfleet_address = "0.0.0.0:{port}"\ncontrol_address = "127.0.0.1:{port}"\n'
        f'[tls]\nca_cert = "{pki.ca_cert}"\nserver_cert = "{pki.server_cert}"\n'
        f'server_key = "{pki.server_key}"\n'
    )
    health.TIMEOUT_S = 0.5
    assert health.main([str(config)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("unhealthy: Fleet API: no TLS gRPC connection to 127.0.0.1:")
