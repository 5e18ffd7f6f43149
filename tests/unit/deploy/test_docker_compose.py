"""docker/compose.yml, validated without a daemon by Debian's `docker-compose config`.

The security properties asserted here are read from the normalized config
that docker-compose itself prints: what would be deployed, not the YAML as
written (anchors and merges resolved).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker" / "compose.yml"
DOCKER_COMPOSE = shutil.which("docker-compose")
SITES = ("site-a", "site-b", "site-c")

pytestmark = pytest.mark.skipif(
    DOCKER_COMPOSE is None,
    reason="docker-compose is not installed (apt-get install -y docker-compose; "
    "make test does it as root), so docker/compose.yml is not validated",
)


def _compose(
    *args: str, deploy: Path | None, compose_file: Path = COMPOSE_FILE
) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GENOFED_", "COMPOSE_")) and k != "PYTHONPATH"
    }
    if deploy is not None:
        env["GENOFED_DEPLOY"] = str(deploy)
    assert DOCKER_COMPOSE is not None
    return subprocess.run(
        [DOCKER_COMPOSE, "-f", str(compose_file), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    deploy = tmp_path_factory.mktemp("deploy")
    res = _compose("config", deploy=deploy)
    assert res.returncode == 0, res.stderr
    doc = yaml.safe_load(res.stdout)
    doc["_deploy"] = str(deploy)
    return doc


def _mounts(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) of each volume, short or long syntax."""
    out = []
    for v in service.get("volumes", []):
        if isinstance(v, str):
            parts = v.split(":")
            source, target = parts[0], parts[1]
            mode = parts[2] if len(parts) > 2 else "rw"
            out.append((source, target, "ro" in mode.split(",")))
        else:
            out.append((v.get("source", ""), v["target"], bool(v.get("read_only"))))
    return out


def _target(service: dict[str, Any], target: str) -> tuple[str, bool]:
    found = [(s, ro) for s, t, ro in _mounts(service) if t == target]
    assert len(found) == 1, f"expected one mount at {target}, got {_mounts(service)}"
    return found[0]


def test_compose_config_q__accepts_the_file(tmp_path: Path) -> None:
    res = _compose("config", "-q", deploy=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""


def test_compose_config_q__rejects_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yml"
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    broken.write_text(text.replace("    read_only: true", "    read_only: maybe", 1))
    if "read_only: maybe" not in broken.read_text():
        broken.write_text(text.replace("  read_only: true", "  read_only: maybe", 1))
    res = _compose("config", "-q", deploy=tmp_path, compose_file=broken)
    assert res.returncode != 0
    assert "read_only" in res.stderr


def test_compose_config__needs_the_deployment_directory() -> None:
    res = _compose("config", "-q", deploy=None)
    assert res.returncode != 0
    assert "GENOFED_DEPLOY" in res.stderr


def test_compose__a_coordinator_three_sites_and_a_runner(config: dict[str, Any]) -> None:
    assert set(config["services"]) == {"coordinator", "register-sites", *SITES, "runner"}
    runner = config["services"]["runner"]
    command = " ".join(runner["command"])
    assert command.startswith("study run /study/study.toml --superlink")
    assert "--ca-cert" in command and "--insecure" not in command
    for site in SITES:
        assert runner["depends_on"][site]["condition"] == "service_healthy"


def test_compose__every_container_is_unprivileged_with_an_init(config: dict[str, Any]) -> None:
    for name, service in config["services"].items():
        uid = str(service.get("user", "")).split(":")[0]
        assert uid not in ("", "0", "root"), f"{name} runs as root"
        assert service.get("init") is True, f"{name} has no init (SIGTERM would be ignored)"
        assert service.get("read_only") is True, f"{name} has a writable root file system"
        assert "ALL" in service.get("cap_drop", []), name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert not service.get("privileged"), name


def test_compose__no_published_ports_and_an_internal_network(config: dict[str, Any]) -> None:
    for name, service in config["services"].items():
        assert not service.get("ports"), f"{name} publishes ports"
    for site in SITES:
        assert not config["services"][site].get("expose"), site
    assert config["networks"]["federation"]["internal"] is True
    for name in ("register-sites", "runner"):  # the Control API stays on loopback
        assert config["services"][name]["network_mode"] == "service:coordinator"


def test_compose__site_data_and_config_read_only_state_on_a_volume(config: dict[str, Any]) -> None:
    deploy = config["_deploy"]
    for site in SITES:
        service = config["services"][site]
        source, read_only = _target(service, "/srv/genofed/site/data")
        assert source == f"{deploy}/cohorts/{site}/data" and read_only, site
        for config_file in ("site.toml", "policy.toml"):
            assert _target(service, f"/srv/genofed/site/{config_file}")[1], (site, config_file)
        assert _target(service, "/etc/genofed/ca.pem")[1], site
        state, read_only = _target(service, "/srv/genofed/site")
        assert state == f"{deploy}/cohorts/{site}" and not read_only, site
        assert "/srv/genofed/site/keys/node.key" in service["command"]


def test_compose__coordinator_config_read_only_state_on_volumes(config: dict[str, Any]) -> None:
    coordinator = config["services"]["coordinator"]
    assert _target(coordinator, "/etc/genofed")[1]
    state, read_only = _target(coordinator, "/var/lib/genofed")
    assert state == "coordinator-state" and not read_only
    assert "coordinator-state" in config["volumes"]
    results, read_only = _target(config["services"]["runner"], "/results")
    assert results == f"{config['_deploy']}/results" and not read_only
    assert "/results/deployed" in config["services"]["runner"]["command"]


def test_compose__the_ca_private_key_is_mounted_nowhere(config: dict[str, Any]) -> None:
    deploy = config["_deploy"]
    for name, service in config["services"].items():
        for source, _target_path, _ro in _mounts(service):
            assert source not in (f"{deploy}/certs", f"{deploy}", f"{deploy}/certs/ca.key"), (
                name,
                source,
            )


@pytest.mark.skipif(os.geteuid() != 0, reason="docker/e2e.sh prepare chowns to the images' uid")
def test_e2e_prepare__writes_every_file_the_compose_file_mounts(tmp_path: Path) -> None:
    from genofed.coordinator.deploy.superlink import load_coordinator_config

    deploy = tmp_path / "deploy"
    env = {**os.environ, "GENOFED_BIN": str(Path(sys.executable).parent)}
    res = subprocess.run(
        [str(ROOT / "docker" / "e2e.sh"), "prepare", str(deploy)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    out = _compose("config", deploy=deploy)
    assert out.returncode == 0, out.stderr
    services = yaml.safe_load(out.stdout)["services"]
    for service in services.values():
        for source, _target_path, read_only in _mounts(service):
            if source.startswith("/"):  # a bind mount: the containers' uid 10001 can use it
                info = Path(source).stat()
                assert info.st_uid == 10001 or (read_only and info.st_mode & 0o004), source
    config = load_coordinator_config(deploy / "coordinator" / "coordinator.toml")
    assert config.tls and config.receipts.mode == "require"
    assert sorted(config.receipts.keys) == list(SITES)
    for site in SITES:
        key = deploy / "cohorts" / site / "keys" / "node.key"
        assert key.stat().st_mode & 0o077 == 0
        assert (deploy / "coordinator" / "nodes" / f"{site}.pub").is_file()
    assert not (deploy / "coordinator" / "tls" / "ca.key").exists()


# -- one hospital's site agent, and the coordinator's own host ------------------------------

SITE_COMPOSE = ROOT / "docker" / "site" / "compose.yml"
COORDINATOR_COMPOSE = ROOT / "docker" / "coordinator" / "compose.yml"


def _config_with(compose_file: Path, env: dict[str, str]) -> dict[str, Any]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GENOFED_", "COMPOSE_")) and k != "PYTHONPATH"
    }
    assert DOCKER_COMPOSE is not None
    res = subprocess.run(
        [DOCKER_COMPOSE, "-f", str(compose_file), "config"],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    return yaml.safe_load(res.stdout)  # type: ignore[no-any-return]


def _hardened(service: dict[str, Any]) -> None:
    assert service["user"] == "10001:10001" and service["init"] is True
    assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]


def test_site_compose__joins_a_remote_coordinator_with_data_read_only(tmp_path: Path) -> None:
    env = {
        "GENOFED_SITE_DIR": str(tmp_path / "site"),
        "GENOFED_DATA_DIR": str(tmp_path / "data"),
        "GENOFED_CA_CERT": str(tmp_path / "ca.pem"),
        "GENOFED_SUPERLINK": "genofed.example.org:9092",
    }
    site = _config_with(SITE_COMPOSE, env)["services"]["site"]
    _hardened(site)
    assert "ports" not in site  # it connects out only
    assert site["command"][site["command"].index("--superlink") + 1] == env["GENOFED_SUPERLINK"]
    assert site["image"] == "genofed/site:dev"  # no PyTorch unless the site asks for it
    source, read_only = _target(site, "/srv/genofed/site/data")
    assert source == env["GENOFED_DATA_DIR"] and read_only
    for target in ("/srv/genofed/site/site.toml", "/srv/genofed/site/policy.toml"):
        assert _target(site, target)[1], target
    assert _target(site, "/etc/genofed/ca.pem")[1]
    state, read_only = _target(site, "/srv/genofed/site")
    assert state == env["GENOFED_SITE_DIR"] and not read_only  # its state
    assert site["restart"] == "unless-stopped"


def test_site_compose__without_the_coordinator_address_says_which_variable(
    tmp_path: Path,
) -> None:
    assert DOCKER_COMPOSE is not None
    res = subprocess.run(
        [DOCKER_COMPOSE, "-f", str(SITE_COMPOSE), "config"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "GENOFED_SITE_DIR": str(tmp_path)},
        timeout=60,
        check=False,
    )
    assert res.returncode != 0 and "GENOFED_" in res.stderr


def test_coordinator_compose__publishes_the_fleet_api_only(tmp_path: Path) -> None:
    doc = _config_with(COORDINATOR_COMPOSE, {"GENOFED_CONFIG_DIR": str(tmp_path)})
    coordinator = doc["services"]["coordinator"]
    _hardened(coordinator)
    assert [(int(p["target"]), int(p["published"])) for p in coordinator["ports"]] == [(9092, 9092)]
    assert _target(coordinator, "/etc/genofed")[1]
    state, read_only = _target(coordinator, "/var/lib/genofed")
    assert state == "coordinator-state" and not read_only
    assert "coordinator-state" in doc["volumes"]
