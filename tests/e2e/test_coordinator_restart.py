"""End to end: the coordinator's SuperLink is killed mid-study, restarted, and the study rerun.

A real federation on 127.0.0.1 (TLS, node auth; :mod:`tests.e2e.federation`),
its own for this module because the test kills and restarts the coordinator.
The analyst's ``genofed study run`` of a signed study is watched line by
line; after a few rounds of the analysis under test the ``flower-superlink``
process is killed by its PID (SIGKILL, as a crashed host would stop). Then:

* ``genofed study run`` exits 6 (coordinator unreachable, lost connection)
  and says what to do: restart the coordinator and rerun the same study;
* no results folder, and no hidden partial one, is left on either side;
* the coordinator is started again on the same state directory, the sites'
  SuperNodes reconnect by themselves, and the same signed study is run again;
* the rerun's tables equal an uninterrupted run's byte for byte;
* every charged release is in each site's ledger once: the rerun's repeated
  requests were answered from the sites' stored releases
  (:mod:`genofed.site_agent.privacy.replays`), and the sites' audit logs
  name those replays.

The glm cannot run in ``dp`` mode (a study's release mode is study-wide, and
``dp`` is for counts and DP-SGD training only), so the ledgers are checked
with a second study: ``dp`` allele frequencies and a DP-SGD logistic model
(``train``), killed after some of its rounds were charged.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from genofed.cli.failures import EXIT_UNREACHABLE
from genofed.common.signing import load_signed_study
from genofed.common.wire.proto import audit_entry_from_bytes
from genofed.coordinator.runner import run_study
from genofed.site_agent.audit.log import entry_to_json, read_site_log
from genofed.site_agent.privacy.ledger import LEDGER_FILE, Budget, Ledger
from genofed.synth import write_cohorts
from tests.e2e.federation import BIN, Federation, make_federation
from tests.harness import InProcessTransport

pytestmark = pytest.mark.slow  # two kill-and-rerun cycles at deployment round latency

SITES = ("a", "b", "c")
GLM_STUDY = """\
[study]
name = "e2e-restart-glm"

[[analysis]]
kind = "freq"

[[analysis]]
kind = "glm"
phenotype = "DISEASE"
covariates = ["AGE", "SEX"]
firth = "never"
"""
DP_STUDY = """\
[study]
name = "e2e-restart-dp"

[privacy]
mode = "dp"
epsilon = 5.0

[[analysis]]
kind = "freq"

[[analysis]]
kind = "train"
target = "DISEASE"
covariates = ["AGE", "SEX"]
covariate_ranges = [[0, 100], [0, 1]]
model = "logistic"
rounds = 5
noise_multiplier = 1.0
"""
STUDY_TIMEOUT_S = 900  # a DP-SGD rerun took 277 s on 2 busy cores (load 12)
#: Rounds of the analysis under test that must be done before the kill.
ROUNDS_BEFORE_KILL = 2


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    root = tmp_path_factory.mktemp("restart")
    cohorts = write_cohorts(root / "cohorts", sites=3, samples=300, variants=200, seed=7)
    fed = make_federation(root, SITES, cohorts.sites)
    key = root / "analyst"
    res = fed.genofed("study", "keygen", "--out", str(key))
    assert res.returncode == 0, res.stdout + res.stderr
    trusted = f'\n[[policy.trusted_analysts]]\nname = "alice"\npublic_key = "{_pub(key)}"\n'
    for site in cohorts.sites:  # a signature must verify against a trusted key, demo or not
        with (Path(site) / "policy.toml").open("a") as fh:
            fh.write(trusted)
    fed.analyst_key = key  # type: ignore[attr-defined]
    try:
        fed.start_all(SITES, cohorts.sites)
        fed.site_dirs = list(cohorts.sites)  # type: ignore[attr-defined]
        yield fed
    finally:
        fed.stop_all()


def _pub(key: Path) -> str:
    return Path(f"{key}.pub").read_text().strip()


def _signed(fed: Federation, tmp_path: Path, text: str) -> Path:
    study = tmp_path / "study.toml"
    study.write_text(text)
    key = fed.analyst_key  # type: ignore[attr-defined]
    res = fed.genofed("study", "sign", str(study), "--key", str(key))
    assert res.returncode == 0, res.stdout + res.stderr
    signed = tmp_path / "study.signed.json"
    assert signed.is_file()
    return signed


def _run_argv(fed: Federation, study: Path, out: Path) -> list[str]:
    argv = [str(BIN / "genofed"), "study", "run", str(study), "--superlink", fed.control]
    return [*argv, "--ca-cert", str(fed.pki.ca_cert), "--sites", "3", "--out", str(out)]


def _superlink_pid(fed: Federation) -> int:
    assert fed.coordinator is not None
    found = re.findall(r"superlink pid (\d+)", fed.coordinator.text())
    assert found, fed.coordinator.text()
    return int(found[-1])


def _run_and_kill(
    fed: Federation, study: Path, out: Path, kill_now: Callable[[str], bool]
) -> tuple[int, str, float, list[int]]:
    """Run ``study``; SIGKILL the SuperLink when ``kill_now(line)``.

    Returns the exit code, the output, the seconds from the kill until
    ``genofed study run`` ended, and the PIDs of the SuperLink's children
    (SuperExec, ServerApp) at the kill.
    """
    proc = subprocess.Popen(
        _run_argv(fed, study, out),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=fed.env,
    )
    lines: list[str] = []
    killed: list[float] = []
    pid = _superlink_pid(fed)
    children: list[int] = []

    def watch() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if not killed and kill_now(line):
                children.extend(c.pid for c in psutil.Process(pid).children(recursive=True))
                os.kill(pid, signal.SIGKILL)
                killed.append(time.monotonic())

    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=STUDY_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(timeout=10)
    text = "".join(lines)
    assert killed, text
    return proc.returncode, text, time.monotonic() - killed[0], children


def _rounds_done(analysis: str, n: int) -> Callable[[str], bool]:
    seen: list[str] = []

    def check(line: str) -> bool:
        if re.match(rf"\s*{analysis}: round \d+ \(", line):
            seen.append(line)
        return len(seen) >= n

    return check


def _restart_coordinator(fed: Federation) -> float:
    """Stop what is left of the coordinator and start it again; seconds it took.

    The sites' SuperNodes are not restarted: they reconnect by themselves
    (Flower retries with a backoff of at most 20 s), and the rerun's ServerApp
    waits for them (``--sites 3``).
    """
    assert fed.coordinator is not None
    old = fed.coordinator
    old.popen.wait(timeout=60)  # `coordinator up` stops by itself when its SuperLink died
    old.stop()
    shutil.copy(old.out, old.out.with_suffix(".killed.out"))
    started = time.monotonic()
    fed.start_coordinator()
    return time.monotonic() - started


def _leftovers(*dirs: Path) -> list[str]:
    """Hidden partial results folders (``.NAME.partial-RUN`` / ``.old-RUN``) under ``dirs``."""
    return [str(p) for d in dirs if d.exists() for p in d.iterdir() if p.name.startswith(".")]


def _charges(site: Path) -> list[dict[str, Any]]:
    return Ledger(site / "state" / LEDGER_FILE, Budget(100.0, 1e-5)).entries()


def _audit_entries(site: Path) -> list[dict[str, Any]]:
    return [entry_to_json(audit_entry_from_bytes(leaf)) for leaf in read_site_log(site).leaves]


def _alive(pids: list[int]) -> list[str]:
    """Command lines of those of ``pids`` still running (killed now, so as not to leak)."""
    left = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            if p.status() != psutil.STATUS_ZOMBIE:
                left.append(" ".join(p.cmdline()))
                p.kill()
        except psutil.Error:
            continue
    return left


def test_superlink_killed_mid_logistic_glm__rerun_of_the_signed_study_equals_uninterrupted(
    federation: Federation, tmp_path: Path
) -> None:
    fed = federation
    study = _signed(fed, tmp_path, GLM_STUDY)
    out = tmp_path / "deployed"
    kill_at = _rounds_done("glm", ROUNDS_BEFORE_KILL)
    code, text, after_kill, children = _run_and_kill(fed, study, out, kill_at)
    print(f"genofed study run ended {after_kill:.1f} s after the kill, exit code {code}")
    assert code == EXIT_UNREACHABLE, text
    flat = " ".join(text.split())
    assert f"lost mid-study after round {ROUNDS_BEFORE_KILL} of glm" in flat, text
    assert "start it again (`genofed coordinator up`)" in flat, text
    assert "run the same study again" in flat and "nothing is charged twice" in flat, text
    assert "genofed-progress:" not in text, text  # Flower's tail only, not the raw events
    assert not out.exists(), list(out.iterdir())
    results = fed.root / "state" / "results"
    print(f"coordinator restarted in {_restart_coordinator(fed):.1f} s")
    assert children  # the SuperExec at least
    assert not _alive(children), "the killed SuperLink's children outlived it"

    started = time.monotonic()
    res = subprocess.run(
        _run_argv(fed, study, out),
        capture_output=True,
        text=True,
        timeout=STUDY_TIMEOUT_S,
        env=fed.env,
        check=False,
    )
    print(f"rerun: {time.monotonic() - started:.1f} s")
    assert res.returncode == 0, res.stdout + res.stderr
    assert not _leftovers(results, tmp_path), _leftovers(results, tmp_path)

    signed, _signature = load_signed_study(study)
    local = tmp_path / "uninterrupted"
    sites = fed.site_dirs  # type: ignore[attr-defined]
    run_study(signed, InProcessTransport(sites), local, engine="in-process")
    tables = sorted(
        p.name for p in local.iterdir() if p.name not in ("provenance.json", "report.html")
    )
    assert any(n.endswith(".logistic") for n in tables), tables
    for name in tables:
        assert (out / name).read_bytes() == (local / name).read_bytes(), name


def test_superlink_killed_mid_dp_training__every_release_is_charged_once(
    federation: Federation, tmp_path: Path
) -> None:
    fed = federation
    sites = [Path(s) for s in fed.site_dirs]  # type: ignore[attr-defined]
    before = {s: len(_charges(s)) for s in sites}
    study = _signed(fed, tmp_path, DP_STUDY)
    out = tmp_path / "deployed"
    kill_at = _rounds_done("train", ROUNDS_BEFORE_KILL)
    code, text, _, children = _run_and_kill(fed, study, out, kill_at)
    assert code == EXIT_UNREACHABLE, text
    assert not out.exists()
    charged = {s: len(_charges(s)) - before[s] for s in sites}
    assert all(n >= 1 + ROUNDS_BEFORE_KILL for n in charged.values()), charged
    _restart_coordinator(fed)
    assert not _alive(children), "the killed SuperLink's children outlived it"

    res = subprocess.run(
        _run_argv(fed, study, out),
        capture_output=True,
        text=True,
        timeout=STUDY_TIMEOUT_S,
        env=fed.env,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert not _leftovers(fed.root / "state" / "results", tmp_path)
    provenance = json.loads((out / "provenance.json").read_text())
    for site, record in zip(sites, provenance["sites"], strict=True):
        releases = record["releases"]
        replayed = [r for r in releases if "replay_of_audit_index" in r]
        fresh = [r for r in releases if float(r.get("epsilon_charged", 0.0)) > 0]
        # what the killed run charged is replayed, not charged again; the rest is charged once.
        # (The round in flight at the kill may be charged after `charged` was counted, when the
        # site finishes it: then it is one more replay. Every charge is a replay or fresh.)
        assert len(replayed) >= charged[site], releases
        assert len(_charges(site)) - before[site] == len(replayed) + len(fresh), releases
        audit = [e for e in _audit_entries(site) if "replay" in str(e.get("noise", ""))]
        assert len(audit) == len(replayed), audit
    total = {s: len(_charges(s)) for s in sites}

    # an uninterrupted run of the same study on the same sites: every release is a replay now
    signed, _signature = load_signed_study(study)
    local = tmp_path / "uninterrupted"
    run_study(signed, InProcessTransport(sites), local, engine="in-process")
    assert {s: len(_charges(s)) for s in sites} == total
    for name in ("freq.afreq", "model.pt", "train.calibration.tsv"):
        assert (out / name).read_bytes() == (local / name).read_bytes(), name
