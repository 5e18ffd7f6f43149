"""Command lines, plaintext refusal and console lines of `coordinator up` and `genofed-site up`."""

from __future__ import annotations

from pathlib import Path

import pytest

from genofed.common.errors import ConfigError, InputError
from genofed.common.pki import init_pki
from genofed.coordinator.app import job_from_run_config
from genofed.coordinator.deploy.superlink import (
    CONFIG_ENV,
    check_config,
    load_coordinator_config,
    superlink_argv,
    translate_superlink,
)
from genofed.site_agent.node.supernode import (
    NodeOptions,
    check_options,
    supernode_argv,
    translate_supernode,
)
from genofed.synth import write_cohorts


def _config(tmp_path: Path, tls: bool = True) -> Path:
    init_pki(tmp_path / "certs", coordinator_host="127.0.0.1", sites=["a"])
    text = '[coordinator]\nfleet_address = "127.0.0.1:9092"\n'
    if tls:
        text += '[tls]\nca_cert = "certs/ca.pem"\nserver_cert = "certs/server.pem"\n'
        text += 'server_key = "certs/server.key"\n'
    (tmp_path / "coordinator.toml").write_text(text)
    return tmp_path / "coordinator.toml"


def test_superlink_argv__tls_and_node_auth_on(tmp_path: Path) -> None:
    config = load_coordinator_config(_config(tmp_path))
    assert check_config(config, insecure=False) == []
    argv = superlink_argv(config, insecure=False)
    assert "--enable-supernode-auth" in argv and "--insecure" not in argv
    assert argv[argv.index("--ssl-certfile") + 1] == str(tmp_path / "certs" / "server.pem")
    assert argv[argv.index("--fleet-api-type") + 1] == "grpc-rere"


def test_coordinator__refuses_plaintext_unless_insecure(tmp_path: Path) -> None:
    config = load_coordinator_config(_config(tmp_path, tls=False))
    with pytest.raises(InputError, match="refusing to start without TLS"):
        check_config(config, insecure=False)
    assert "PLAINTEXT" in check_config(config, insecure=True)[0]
    assert "--enable-supernode-auth" not in superlink_argv(config, insecure=True)


def test_coordinator_config__unknown_key_names_key_and_file(tmp_path: Path) -> None:
    path = tmp_path / "coordinator.toml"
    path.write_text('[coordinator]\nfleet_adress = "x:1"\n')
    with pytest.raises(ConfigError, match="fleet_adress") as err:
        load_coordinator_config(path)
    assert str(path) in str(err.value)


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cohorts")
    return write_cohorts(root, sites=1, samples=40, variants=20, seed=3).sites[0]


def test_site_up__refuses_plaintext_unless_insecure(site_dir: Path) -> None:
    with pytest.raises(InputError, match="without TLS"):
        check_options(NodeOptions(site_dir=site_dir, superlink="127.0.0.1:9092"))
    warnings = check_options(NodeOptions(site_dir, "127.0.0.1:9092", insecure=True))
    assert "PLAINTEXT" in warnings[0]


def test_supernode_argv__tls_key_and_site_dir_as_node_config(
    site_dir: Path, tmp_path: Path
) -> None:
    pki = init_pki(tmp_path, coordinator_host="127.0.0.1", sites=["a"])
    opts = NodeOptions(site_dir, "c:9092", ca_cert=pki.ca_cert, node_key=pki.node_keys["a"][0])
    assert check_options(opts) == []
    argv = supernode_argv(opts)
    assert argv[argv.index("--isolation") + 1] == "process"  # the app gate runs ClientApps
    assert argv[argv.index("--node-config") + 1] == f'site-dir="{site_dir.resolve()}"'
    assert "--insecure" not in argv and "--auth-supernode-private-key" in argv


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # connected / disconnected / reconnected come from NodeWatch, not the log
        ("\x1b[92mINFO \x1b[0m:      [Fleet.ActivateNode] Activated node_id=42", None),
        ("INFO :      [Fleet.PushMessages] Push replies from node_id=42", "reply from node 42"),
        ("INFO :      Created run 7 in federation @none/default", "run 7 started"),
        ("INFO :      [Fleet.PullMessages] something", None),
    ],
)
def test_translate_superlink__one_line_per_event(line: str, expected: str | None) -> None:
    assert translate_superlink(line) == expected


def test_translate_superlink__names_the_node_by_its_registered_name() -> None:
    line = "INFO :      [Fleet.PushMessages] Push replies from node_id=42"
    assert translate_superlink(line, lambda n: f"site-a (node {n})") == (
        "reply from site-a (node 42)"
    )


def test_translate_supernode__connection_and_refusal() -> None:
    assert (translate_supernode("INFO :      SuperNode ID: 5") or "").endswith(
        "Z connected to the coordinator as node 5"
    )
    assert "refused this node" in (translate_supernode("ERROR : Exit Code: 305") or "")
    assert translate_supernode("INFO :      [RUN 3]") is None


def test_job_from_run_config__reads_the_study_text_not_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `genofed coordinator up` names its config for the ServerApp (receipt keys and mode)
    monkeypatch.setenv(CONFIG_ENV, str(_config(tmp_path)))
    text = '[study]\nname = "s"\n[[analysis]]\nkind = "freq"\n'
    job = job_from_run_config(
        {"study-text": text, "out-dir": str(tmp_path / "r"), "expected-sites": 3, "run-id": "abc"}
    )
    assert job.study.name == "s" and job.expected_sites == 3 and job.run_id == "abc"
    assert job.engine == "deployment" and job.signature is None
    assert job.receipts is not None and job.receipts.mode == "require"


def test_job_from_run_config__without_out_dir_keeps_results_in_the_coordinator_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path)
    monkeypatch.setenv(CONFIG_ENV, str(config))
    text = '[study]\nname = "s"\n[[analysis]]\nkind = "freq"\n'
    job = job_from_run_config({"study-text": text, "out-dir": "", "run-id": "r42"})
    assert job.out == load_coordinator_config(config).state_dir.resolve() / "results" / "r42"


def test_remove_partial_results__only_the_staging_folders_of_interrupted_runs(
    tmp_path: Path,
) -> None:
    """A ServerApp killed mid-study leaves ``.RUN.partial-RUN``; finished results stay."""
    from genofed.coordinator.deploy.superlink import remove_partial_results

    results = tmp_path / "results"
    done, partial, old = results / "aa11", results / ".bb22.partial-bb22", results / ".aa11.old-cc"
    for d in (done, partial, old, results / ".hidden-note"):
        d.mkdir(parents=True)
        (d / "freq.afreq").write_text("x")
    assert remove_partial_results(results) == [old, partial]
    assert sorted(p.name for p in results.iterdir()) == [".hidden-note", "aa11"]
    assert remove_partial_results(tmp_path / "none") == []
