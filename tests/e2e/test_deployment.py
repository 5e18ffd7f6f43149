"""End to end: a real SuperLink and three SuperNodes on 127.0.0.1, TLS and node auth on.

The federation is started once for the module (``genofed coordinator up``,
``register-site``, ``genofed-site up`` per site) and stopped by PID in the
fixture's teardown. The study run over gRPC must write the same tables, byte
for byte, as the in-process run of the same study on the same site
directories (the in-process harness runs the same protocol, codec and site
handler as the simulation engine).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from genofed.common.pki import write_node_keypair
from genofed.common.study import load_study
from genofed.coordinator.runner import run_study
from genofed.synth import write_cohorts
from tests.e2e.federation import BIN, Federation, free_port, make_federation, start
from tests.harness import InProcessTransport

SITES = ("a", "b", "c")
STUDY = """\
[study]
name = "e2e-freq-hardy"
on_variant_mismatch = "stop"

[[analysis]]
kind = "freq"

[[analysis]]
kind = "hardy"
midp = false
"""
STUDY_TIMEOUT_S = 180
DROPOUT_STUDY = """\
[study]
name = "e2e-dropout"
min_sites = 2

[[analysis]]
kind = "freq"

[[analysis]]
kind = "glm"
phenotype = "DISEASE"
covariates = ["AGE", "SEX"]
firth = "never"
"""
SITE_TIMEOUT_S = 30


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    root = tmp_path_factory.mktemp("federation")
    cohorts = write_cohorts(root / "cohorts", sites=3, samples=300, variants=200, seed=7)
    fed = make_federation(root, SITES, cohorts.sites)
    try:
        fed.start_all(SITES, cohorts.sites)
        fed.site_dirs = list(cohorts.sites)  # type: ignore[attr-defined]
        yield fed
    finally:
        fed.stop_all()


def _run_study(
    fed: Federation, study: Path, out: Path, timeout: float = STUDY_TIMEOUT_S
) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    res = fed.genofed(
        "study",
        "run",
        str(study),
        "--superlink",
        fed.control,
        "--ca-cert",
        str(fed.pki.ca_cert),
        "--sites",
        "3",
        "--out",
        str(out),
        timeout=timeout,
    )
    return res, time.monotonic() - started


def test_study_run__over_grpc_with_tls_matches_in_process_run_byte_for_byte(
    federation: Federation, tmp_path: Path
) -> None:
    study_file = tmp_path / "study.toml"
    study_file.write_text(STUDY)
    res, seconds = _run_study(federation, study_file, tmp_path / "deployed")
    assert res.returncode == 0, res.stdout + res.stderr
    print(f"deployed study: {seconds:.1f} s")

    local = tmp_path / "in-process"
    run_study(
        load_study(study_file),
        InProcessTransport(federation.site_dirs),  # type: ignore[attr-defined]
        local,
        engine="in-process",
    )
    deployed = sorted(p.name for p in (tmp_path / "deployed").iterdir())
    assert deployed == sorted(p.name for p in local.iterdir())
    tables = [n for n in deployed if n not in ("provenance.json", "report.html")]
    assert {"freq.afreq", "hardy.hardy"} <= set(tables)
    for name in tables:
        assert (tmp_path / "deployed" / name).read_bytes() == (local / name).read_bytes(), name
    provenance = json.loads((tmp_path / "deployed" / "provenance.json").read_text())
    assert provenance["run"]["engine"] == "deployment"
    assert sorted(s["name"] for s in provenance["sites"]) == ["site-a", "site-b", "site-c"]
    report = (tmp_path / "deployed" / "report.html").read_text()
    assert '<tr data-key="engine"><th>engine</th><td>deployment</td></tr>' in report
    checks = [r["receipt"]["receipt_check"] for s in provenance["sites"] for r in s["releases"]]
    assert checks and set(checks) == {"verified"}  # [receipts] mode = "require" in the harness
    for name, proc in federation.sites.items():
        assert "reply sent" in proc.text(), name


@pytest.mark.slow  # about 100 s on 2 cores: four SecAgg+ stages at deployment round latency
def test_exact_study__secaggplus_over_grpc_matches_plain_in_process_byte_for_byte(
    federation: Federation, tmp_path: Path
) -> None:
    """``[privacy] mode = "exact"``: the counts round is Flower's SecAgg+ (four stages)."""
    plain_file = tmp_path / "plain.toml"
    plain_file.write_text(STUDY)
    exact_file = tmp_path / "exact.toml"
    exact_file.write_text(
        STUDY.replace("[[analysis]]", '[privacy]\nmode = "exact"\n\n[[analysis]]', 1)
    )
    res, seconds = _run_study(federation, exact_file, tmp_path / "deployed")
    assert res.returncode == 0, res.stdout + res.stderr
    print(f"deployed exact study: {seconds:.1f} s")
    local = tmp_path / "in-process"
    sites = federation.site_dirs  # type: ignore[attr-defined]
    run_study(load_study(plain_file), InProcessTransport(sites), local, engine="in-process")
    for name in ("freq.afreq", "hardy.hardy"):
        assert (tmp_path / "deployed" / name).read_bytes() == (local / name).read_bytes(), name
    provenance = json.loads((tmp_path / "deployed" / "provenance.json").read_text())
    assert provenance["privacy"]["release_mode"] == "exact"
    for site in provenance["sites"]:
        counts = [r for r in site["releases"] if r["request"] == "genotype_counts"]
        assert [a["name"] for a in counts[0]["arrays"]] == ["secagg_masked_0", "secagg_masked_1"]
        assert counts[0]["receipt"]["receipt_check"] == "verified"


MASKED_GLM_STUDY = """\
[study]
name = "e2e-masked-logistic"

[privacy]
mode = "exact"

[[analysis]]
kind = "glm"
phenotype = "DISEASE"
covariates = ["AGE", "SEX"]
firth = "never"
"""


@pytest.mark.slow  # every Newton round is four SecAgg+ stages at deployment round latency
def test_exact_logistic_glm__every_newton_round_masked_over_grpc_equals_plain(
    federation: Federation, tmp_path: Path
) -> None:
    """A masked logistic GWAS over gRPC: the same table as the plain in-process run."""
    exact_file = tmp_path / "exact.toml"
    exact_file.write_text(MASKED_GLM_STUDY)
    res, seconds = _run_study(federation, exact_file, tmp_path / "deployed", timeout=1800)
    assert res.returncode == 0, res.stdout + res.stderr
    provenance = json.loads((tmp_path / "deployed" / "provenance.json").read_text())
    rounds = provenance["summary"]["glm"]["rounds"]
    print(f"deployed masked logistic glm: {seconds:.1f} s, {rounds} rounds")
    plain_file = tmp_path / "plain.toml"
    plain_file.write_text(MASKED_GLM_STUDY.replace('mode = "exact"', 'mode = "plain"'))
    local = tmp_path / "in-process"
    sites = federation.site_dirs  # type: ignore[attr-defined]
    plain = run_study(load_study(plain_file), InProcessTransport(sites), local, engine="t")
    assert plain.summary["glm"]["rounds"] == rounds  # type: ignore[index]
    tables = [n for n in plain.outputs if n.endswith((".logistic", ".ssf.tsv"))]
    assert len(tables) == 2
    for name in tables:
        assert (tmp_path / "deployed" / name).read_bytes() == (local / name).read_bytes(), name
    for site in provenance["sites"]:
        glm = [r for r in site["releases"] if r["request"].startswith("glm")]
        assert len(glm) == rounds
        for release in glm:
            assert all(a["name"].startswith("secagg_masked_") for a in release["arrays"])
            assert release["receipt"]["receipt_check"] == "verified"


def test_site_policy__refuses_a_bundle_it_does_not_allow(
    federation: Federation, tmp_path: Path
) -> None:
    site_c = Path(federation.site_dirs[2])  # type: ignore[attr-defined]
    policy = site_c / "policy.toml"
    saved = policy.read_text()
    lines = [
        'allowed_app_hashes = ["' + "0" * 64 + '"]' if ln.startswith("allowed_app_hashes") else ln
        for ln in saved.splitlines()
    ]
    policy.write_text("\n".join(lines) + "\n")
    try:
        study_file = tmp_path / "study.toml"
        study_file.write_text(STUDY)
        res, _ = _run_study(federation, study_file, tmp_path / "refused")
    finally:
        policy.write_text(saved)
    assert res.returncode == 3, res.stdout + res.stderr  # a site refused
    assert "APP_NOT_ALLOWED" in res.stderr.replace("\n", " ")
    # named by its registered name, not its node ID: it refused before it could say its name
    assert "site-c" in res.stderr and "node " not in res.stderr, res.stderr
    assert not (tmp_path / "refused").exists()
    refusals = [json.loads(x) for x in (site_c / "app-refusals.jsonl").read_text().splitlines()]
    assert refusals[-1]["reason_code"] == "APP_NOT_ALLOWED"
    assert "REFUSED app bundle" in federation.sites["c"].text()
    assert federation.sites["c"].wait_for("refused (APP_NOT_ALLOWED)", 10)


def test_unregistered_node_key__is_refused_by_the_coordinator(
    federation: Federation, tmp_path: Path
) -> None:
    key, pub = tmp_path / "intruder.key", tmp_path / "intruder.pub"
    write_node_keypair(key, pub)
    site_dir = Path(federation.site_dirs[0])  # type: ignore[attr-defined]
    intruder_dir = tmp_path / "intruder-site"
    shutil.copytree(site_dir, intruder_dir, ignore=shutil.ignore_patterns(".genofed-node"))
    proc = federation.start_site("intruder", intruder_dir, key)
    try:
        proc.popen.wait(timeout=60)
    finally:
        proc.stop()
    assert proc.popen.returncode not in (0, None)
    assert "refused this node" in proc.text()
    assert "refused a node whose key is not registered" in federation.coordinator.text()  # type: ignore[union-attr]


def test_plaintext_client__cannot_connect_to_the_tls_coordinator(
    federation: Federation, tmp_path: Path
) -> None:
    site_dir = Path(federation.site_dirs[0])  # type: ignore[attr-defined]
    argv = [
        str(BIN / "flower-supernode"),
        "--insecure",
        "--superlink",
        federation.fleet,
        "--port",
        str(free_port()),
        "--max-retries",
        "2",
        "--node-config",
        f'site-dir="{site_dir}"',
    ]
    proc = start("plaintext", argv, tmp_path / "plaintext.out", federation.env)
    try:
        proc.popen.wait(timeout=60)
    finally:
        proc.stop()
    assert proc.popen.returncode != 0
    assert "SuperNode ID" not in proc.text()


def test_site_up__refuses_plaintext_without_insecure(federation: Federation) -> None:
    site_dir = Path(federation.site_dirs[0])  # type: ignore[attr-defined]
    res = subprocess.run(
        [str(BIN / "genofed-site"), "up", str(site_dir), "--superlink", federation.fleet],
        capture_output=True,
        text=True,
        timeout=60,
        env=federation.env,
        check=False,
    )
    assert res.returncode == 2
    assert "refusing to connect without TLS" in res.stderr.replace("\n", " ")


def test_coordinator_up__refuses_plaintext_without_insecure(tmp_path: Path) -> None:
    config = tmp_path / "coordinator.toml"
    config.write_text(f'[coordinator]\nfleet_address = "127.0.0.1:{free_port()}"\n')
    res = subprocess.run(
        [str(BIN / "genofed"), "coordinator", "up", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 2
    assert "refusing to start without TLS" in res.stderr.replace("\n", " ")


def test_site_killed_mid_study__study_completes_without_it_and_names_it(
    federation: Federation, tmp_path: Path
) -> None:
    """Kill site c's ``genofed-site up`` during the glm, as a crashed host would stop.

    Its SuperNode and app gate run in their own process groups and must
    stop with it (the supervisor asks Linux to signal them when it dies).

    The study allows ``min_sites = 2``: after ``--site-timeout`` the coordinator
    drops site c, runs the glm again from its first round with sites a and b,
    and says so. Kept last in this module: it restarts site c afterwards.
    """
    study_file = tmp_path / "study.toml"
    study_file.write_text(DROPOUT_STUDY)
    out = tmp_path / "deployed"
    argv = [str(BIN / "genofed"), "study", "run", str(study_file), "--superlink"]
    argv += [federation.control, "--ca-cert", str(federation.pki.ca_cert), "--sites", "3"]
    argv += ["--site-timeout", str(SITE_TIMEOUT_S), "--out", str(out)]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=federation.env
    )
    lines: list[str] = []
    killed = threading.Event()
    site_c = federation.sites["c"]

    def watch() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "(glm" in line and not killed.is_set():
                os.kill(site_c.popen.pid, signal.SIGKILL)
                killed.set()

    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=STUDY_TIMEOUT_S + 2 * SITE_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(timeout=10)
        site_c.popen.wait(timeout=30)
        orphans = _wait_gone(str(federation.site_dirs[2]), timeout=30)  # type: ignore[attr-defined]
        federation.start_site("c", federation.site_dirs[2], federation.pki.node_keys["c"][0])  # type: ignore[attr-defined]
    text = "".join(lines)
    assert killed.is_set(), text
    assert not orphans, f"site c's children outlived it: {orphans}"
    assert proc.returncode == 0, text
    assert "site-c dropped out" in text.replace("\n", " "), text

    provenance = json.loads((out / "provenance.json").read_text())
    (missing,) = provenance["sites_missing"]
    assert missing["site"] == "site-c" and missing["reason_code"] == "NO_REPLY"
    assert str(missing["step"]).startswith("glm")
    assert f"no reply within {SITE_TIMEOUT_S} s" in str(missing["message"])

    # freq came from all three sites (its round was over); the glm from a and b only
    study = load_study(study_file)
    dirs = federation.site_dirs  # type: ignore[attr-defined]
    three, two = tmp_path / "three", tmp_path / "two"
    run_study(study, InProcessTransport(dirs), three, engine="in-process")
    run_study(study, InProcessTransport(dirs[:2]), two, engine="in-process")
    assert (out / "freq.afreq").read_bytes() == (three / "freq.afreq").read_bytes()
    glm = [p.name for p in two.iterdir() if ".glm." in p.name]
    assert glm
    for name in glm:
        assert (out / name).read_bytes() == (two / name).read_bytes(), name


def _wait_gone(site_dir: str, timeout: float) -> list[str]:
    """Command lines of processes still serving ``site_dir`` after ``timeout`` s (killed)."""
    deadline = time.monotonic() + timeout
    while True:
        left = []
        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if site_dir in cmd and ("flower-" in cmd or "appgate" in cmd):
                left.append((p, cmd))
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for p, _ in left:
        with contextlib.suppress(psutil.Error):
            p.kill()
    return [cmd for _, cmd in left]
