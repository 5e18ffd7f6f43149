"""``report.html``: the analyst's page, checked as text, re-rendered, and in headless Chromium."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread
from typer.testing import CliRunner

from genofed.cli.analyst import app
from genofed.common.study import study_from_mapping
from genofed.coordinator.protocols import REPORT_SECTIONS
from genofed.coordinator.runner import StudyOutcome, run_study
from genofed.coordinator.writers.analyst_report import REPORT_FILE
from genofed.coordinator.writers.analyst_report._html import tsv_table
from genofed.coordinator.writers.analyst_report.page import render_page, site_epsilon
from genofed.coordinator.writers.analyst_report.sections import TOP_HITS
from genofed.site_agent.privacy.ledger import Budget, Ledger, Release
from genofed.synth import write_cohorts
from tests.harness import InProcessTransport

cli = CliRunner()
CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
GRID = [365.0, 730.0, 1095.0, 1461.0, 1826.0]
STUDY = study_from_mapping(
    {
        "study": {"name": "report-qc", "description": "freq, hardy, a GWAS & <survival>"},
        "analysis": [
            {"kind": "freq"},
            {"kind": "hardy"},
            {"kind": "glm", "phenotype": "QPHENO", "covariates": ["AGE", "SEX"], "model": "linear"},
            {
                "kind": "km",
                "time": "RFS_DAYS",
                "event": "RFS_EVENT",
                "group": "RSCORE",
                "cuts": [18, 31],
                "grid": GRID,
            },
        ],
    },
    path=Path("<test>"),
)
IDS = ["freq", "hardy", "glm", "km"]


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> StudyOutcome:
    root = tmp_path_factory.mktemp("analyst-report")
    cohort = write_cohorts(root / "c", sites=3, samples=300, variants=40, seed=9)
    return run_study(STUDY, InProcessTransport(cohort.sites), root / "results", engine="in-process")


def _page(outcome: StudyOutcome) -> str:
    return (outcome.out / REPORT_FILE).read_text(encoding="utf-8")


def _section(page: str, ident: str) -> str:
    found = re.search(rf'<section class="analysis" id="analysis-{ident}".*?</section>', page, re.S)
    assert found is not None, ident
    return found[0]


def _shown(value: object) -> str:
    """How the page prints a summary value (independently of the renderer's code)."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _images(fragment: str) -> list[bytes]:
    return [
        base64.b64decode(m)
        for m in re.findall(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', fragment)
    ]


def test_report__is_written_last_before_provenance_and_listed(outcome: StudyOutcome) -> None:
    assert outcome.outputs[-2:] == (REPORT_FILE, "provenance.json")
    provenance = json.loads((outcome.out / "provenance.json").read_text())
    assert REPORT_FILE in provenance["outputs"]
    assert provenance["summary"]["glm"] == outcome.summary["glm"]
    assert provenance["analysis_outputs"]["km"] == ["km.tsv", "logrank.tsv", "km.png"]


def test_report__header_sites_and_privacy_come_from_the_run(outcome: StudyOutcome) -> None:
    page = _page(outcome)
    provenance = json.loads((outcome.out / "provenance.json").read_text())
    assert '<h1 id="title">Study report: report-qc</h1>' in page
    assert STUDY.sha256 in page and outcome.run_id in page
    assert '<tr data-key="engine"><th>engine</th><td>in-process</td></tr>' in page
    assert '<tr data-key="signed by"><th>signed by</th><td>unsigned</td></tr>' in page
    assert "freq, hardy, a GWAS &amp; &lt;survival&gt;" in page  # escaped, not markup
    sites = re.search(r'<table id="sites">.*?</table>', page, re.S)
    assert sites is not None
    for site in provenance["sites"]:
        assert f"<tr><td>{site['name']}</td><td>{site['n_samples']}</td>" in sites[0]
    assert '<tr data-key="release mode"><th>release mode</th><td>plain</td></tr>' in page
    for site, withheld in outcome.summary["suppressed"].items():  # type: ignore[attr-defined]
        assert f'<tr data-key="{site}"><th>{site}</th><td>{withheld}</td></tr>' in page
    assert 'id="sites-missing"' not in page  # every site took part


def test_report__one_section_per_analysis_in_study_order_with_the_summary(
    outcome: StudyOutcome,
) -> None:
    page = _page(outcome)
    starts = [page.index(f'id="analysis-{ident}"') for ident in IDS]
    assert starts == sorted(starts)
    for ident in IDS:
        section = _section(page, ident)
        stats = outcome.summary[ident]
        assert isinstance(stats, dict) and stats
        for key, value in stats.items():
            k = html.escape(key)
            assert f'<tr data-key="{k}"><th>{k}</th><td>{_shown(value)}</td></tr>' in section, key
        for name in json.loads((outcome.out / "provenance.json").read_text())["analysis_outputs"][
            ident
        ]:
            assert f"<li><code>{name}</code></li>" in section
    assert "render-error" not in page
    # count tables: their rows, and none withheld (the demo policy suppresses nothing)
    rows = re.search(r'data-rows="(\d+)" data-withheld="(\d+)"', _section(page, "freq"))
    assert rows is not None and int(rows[1]) == outcome.summary["n_variants"]
    assert int(rows[2]) == outcome.summary["suppressed"]["any site"]  # type: ignore[index]


def test_report__glm_top_hits_and_embedded_plots_are_the_result_files(
    outcome: StudyOutcome,
) -> None:
    section = _section(_page(outcome), "glm")
    lines = [
        r.split("\t") for r in (outcome.out / "gwas.QPHENO.glm.linear").read_text().splitlines()
    ]
    header, rows = lines[0], [r for r in lines[1:] if r[6] == "ADD"]
    best = min(rows, key=lambda r: float(r[header.index("P")]))
    top = re.search(r'<table id="top-hits-glm">.*?<tbody><tr>(.*?)</tr>', section, re.S)
    assert top is not None and f"<td>{best[2]}</td>" in top[1]  # lowest P first
    assert f"<td>{best[header.index('P')]}</td>" in top[1]
    hits = re.search(r'<table id="top-hits-glm">.*?</table>', section, re.S)
    assert hits is not None and hits[0].count("<tr>") == 1 + min(TOP_HITS, len(rows))
    assert _images(section) == [
        (outcome.out / "gwas.QPHENO.manhattan.png").read_bytes(),
        (outcome.out / "gwas.QPHENO.qq.png").read_bytes(),
    ]
    km = _section(_page(outcome), "km")
    assert _images(km) == [(outcome.out / "km.png").read_bytes()]
    logrank = (outcome.out / "logrank.tsv").read_text().splitlines()[1].split("\t")
    line = re.search(r'<p class="logrank" id="logrank-km">(.*?)</p>', km)
    assert line is not None and f"p = {logrank[5]}" in line[1]
    assert f"{float(logrank[5]):.4g}" == outcome.summary["km"]["logrank p"]  # type: ignore[index]


def test_report__is_self_contained(outcome: StudyOutcome) -> None:
    page = _page(outcome)
    assert "<script" not in page and "<link" not in page and "<iframe" not in page
    assert not re.search(r'(src|href)="(?!data:|#)', page)
    assert "url(" not in page and "@import" not in page and "http" not in page


def test_study_report_cli__renders_the_same_page_again(
    outcome: StudyOutcome, tmp_path: Path
) -> None:
    again = tmp_path / "sub" / "again.html"
    result = cli.invoke(app, ["study", "report", str(outcome.out), "--out", str(again)])
    assert result.exit_code == 0, result.output
    assert again.read_bytes() == (outcome.out / REPORT_FILE).read_bytes()
    bad = cli.invoke(app, ["study", "report", str(tmp_path), "--out", str(tmp_path / "x.html")])
    assert bad.exit_code == 2 and "no provenance.json" in bad.output
    assert not (tmp_path / "x.html").exists()


def test_report__renders_what_exists_and_a_generic_section_for_an_unknown_kind(
    outcome: StudyOutcome, tmp_path: Path
) -> None:
    copy = tmp_path / "results"
    shutil.copytree(outcome.out, copy)
    (copy / "km.png").unlink()
    shutil.copy(copy / "gwas.QPHENO.qq.png", copy / "future.png")
    doc = json.loads((copy / "provenance.json").read_text())
    doc["study"]["canonical"]["analyses"].append(
        {"id": "future", "kind": "not-yet", "params": {"alpha": 0.5}}
    )
    doc["summary"]["future"] = {"answer": 42, "<odd>": "a & b"}
    doc["analysis_outputs"]["future"] = ["future.png", "future.tsv"]
    page = render_page(copy, doc, sections=REPORT_SECTIONS)
    km = _section(page, "km")
    assert _images(km) == [] and "<li><code>km.png</code></li>" in km
    assert 'id="logrank-km"' in km  # the rest of the section is still there
    future = _section(page, "future")
    assert 'data-kind="not-yet"' in future and "alpha = 0.5" in future
    assert '<tr data-key="answer"><th>answer</th><td>42</td></tr>' in future
    assert "<th>&lt;odd&gt;</th><td>a &amp; b</td>" in future
    assert _images(future) == [(copy / "future.png").read_bytes()]
    assert "<li><code>future.tsv</code></li>" in future
    assert "render-error" not in page


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (apt-get install -y chromium; make test does it as root)",
)
def test_report__renders_in_headless_chromium(outcome: StudyOutcome, tmp_path: Path) -> None:
    url = (outcome.out / REPORT_FILE).as_uri()
    shot = tmp_path / "shot.png"
    taken = _chromium(
        [f"--screenshot={shot}", "--window-size=1280,4000", "--hide-scrollbars", url],
        tmp_path / "profile-shot",
    )
    assert shot.is_file(), taken.stderr[-2000:]
    dumped = _chromium(["--dump-dom", url], tmp_path / "profile-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout
    # the parsed document has the key elements
    assert '<h1 id="title">Study report: report-qc</h1>' in dom
    for table in ("run", "sites", "privacy", "top-hits-glm", "summary-km", "logrank-groups-km"):
        assert re.search(rf'<table id="{table}"', dom), table
    sections = re.findall(r'<section class="analysis" id="analysis-([^"]+)"', dom)
    assert sections == IDS
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', dom)) == 3
    assert re.search(r'<p class="logrank" id="logrank-km">Log-rank test: chi-square', dom)
    # the screenshot shows the page styled: the demo-policy box and the Manhattan plot's points
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (4000, 1280)
    demo_box = np.all(np.abs(pixels - np.array([0xFF, 0xF3, 0xC4]) / 255) < 0.02, axis=-1)
    points = np.all(np.abs(pixels - np.array([0x1F, 0x4E, 0x79]) / 255) < 0.08, axis=-1)
    assert demo_box.sum() > 5000, "the demo-policy box is not rendered with its style"
    assert points.sum() > 50, "the Manhattan plot is not drawn"


#: A dp study charged 0.5 at each site (its delta is the demo policy's budget delta).
DP_HALF = study_from_mapping(
    {
        "study": {"name": "dpqc"},
        "privacy": {"mode": "dp", "epsilon": 0.5, "delta": 1e-5},
        "analysis": [{"kind": "freq"}],
    },
    path=Path("<test>"),
)


@pytest.fixture(scope="module")
def dp_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The results of a dp run and of the same study run again (each site replays)."""
    root = tmp_path_factory.mktemp("dp-report")
    cohort = write_cohorts(root / "c", sites=3, samples=300, variants=30, seed=4)
    first = run_study(DP_HALF, InProcessTransport(cohort.sites), root / "r1", engine="t")
    again = run_study(DP_HALF, InProcessTransport(cohort.sites), root / "r2", engine="t")
    return first.out, again.out


def _site_rows(page: str) -> dict[str, str]:
    sites = re.search(r'<table id="sites">.*?</table>', page, re.S)
    assert sites is not None
    return {m[1]: m[0] for m in re.finditer(r"<tr><td>([^<]+)</td>.*?</tr>", sites[0], re.S)}


def _doc(out: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((out / "provenance.json").read_text())
    return doc


def _charged(site: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in site["releases"] if r.get("epsilon_charged")]


def test_report__dp_study_shows_study_and_per_site_composed_epsilon(
    dp_runs: tuple[Path, Path],
) -> None:
    first, _ = dp_runs
    page = (first / REPORT_FILE).read_text(encoding="utf-8")
    assert '<tr data-key="release mode"><th>release mode</th><td>dp</td></tr>' in page
    assert '<tr data-key="study ε"><th>study ε</th><td>0.5</td></tr>' in page
    assert "<th>ε composed (this run)</th><th>per-release ε charges</th>" in page
    assert "ε charged" not in page and 'id="epsilon-note"' in page  # no bare sum
    rows = _site_rows(page)
    for site in _doc(first)["sites"]:
        (release,) = _charged(site)  # one charge: composed, it is that charge
        charge = f"{release['epsilon_charged']:.4g}"
        assert charge == "0.5" and f"<td>{charge}</td><td>{charge}</td></tr>" in rows[site["name"]]


def test_report__a_rerun_shows_each_replay_and_charges_nothing(
    dp_runs: tuple[Path, Path],
) -> None:
    first, again = dp_runs
    rows = _site_rows((again / REPORT_FILE).read_text(encoding="utf-8"))
    charged_first = {s["name"]: _charged(s) for s in _doc(first)["sites"]}
    for site in _doc(again)["sites"]:
        assert not _charged(site)
        (replay,) = [r for r in site["releases"] if "replay_of_audit_index" in r]
        (original,) = charged_first[site["name"]]
        assert replay["replay_of_audit_index"] == original["receipt"]["audit_index"]
        row = rows[site["name"]]
        assert "<td>not charged</td>" in row
        assert f"replay of entry {original['receipt']['audit_index']}, not charged" in row


def test_report__composes_a_sites_charges_as_its_ledger_does(
    dp_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    first, _ = dp_runs
    doc = _doc(first)
    for site in doc["sites"]:  # each site charged twice 0.5 (the same release again)
        (release,) = _charged(site)
        site["releases"].append({**release, "receipt": {**release["receipt"], "audit_index": 99}})
    z = _charged(doc["sites"][0])[0]["noise"]["noise_multiplier"]
    ledger = Ledger(tmp_path / "ledger.sqlite", Budget(100.0, 1e-5))
    for run in ("a", "b"):
        ledger.charge(Release("0" * 64, "freq", run, noise_multiplier=z, sensitivity=1.0))
    spent = ledger.spent()
    assert 0.7 < spent < 0.75  # composed: not the sum, 1
    rows = _site_rows(render_page(first, doc, sections=REPORT_SECTIONS))
    for site in doc["sites"]:
        charge = f"{_charged(site)[0]['epsilon_charged']:.4g}"
        assert f"<td>{spent:.4g}</td><td>{charge} + {charge}</td></tr>" in rows[site["name"]]
        epsilon, composed, _, _ = site_epsilon(site)
        assert composed and epsilon == pytest.approx(spent)
    # a release whose record does not say its noise: the sum, and the page says it is one
    site = doc["sites"][0]
    del site["releases"][-1]["noise"]
    total = sum(r["epsilon_charged"] for r in _charged(site))
    rows = _site_rows(render_page(first, doc, sections=REPORT_SECTIONS))
    assert (
        f'<td>{total:.4g} <span class="meta">(sum of per-release ε; the site&#x27;s composed '
        "spending is lower — see its report)</span></td>"
    ) in rows[site["name"]]


def test_tsv_table__shows_the_first_rows_and_says_how_many_there_are(tmp_path: Path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("A\tB\n" + "".join(f"{i}\t<{i}>\n" for i in range(5)))
    shown = tsv_table(path, table_id="t", max_rows=2)
    assert shown.count("<tr>") == 3 and "<td>&lt;1&gt;</td>" in shown
    assert "first 2 of 5 rows; all in t.tsv" in shown
    assert "rows; all in" not in tsv_table(path, max_rows=5)


def test_report__shows_the_guard_s_left_out_samples_imputed_variants_and_founders(
    outcome: StudyOutcome, tmp_path: Path
) -> None:
    copy = tmp_path / "results"
    shutil.copytree(outcome.out, copy)
    doc = json.loads((copy / "provenance.json").read_text())
    doc["summary"]["guard_left_out"] = [{"site": "site-a", "analysis": "g<1>", "samples": 6}]
    doc["summary"]["glm_imputed_variants"] = [{"site": "site-b", "analysis": "g", "variants": 17}]
    doc["summary"]["founders_only"] = {"sites": ["site-c"], "analyses": ["freq"], "note": "x & y"}
    page = render_page(copy, doc, sections=REPORT_SECTIONS)
    left = re.search(r'<table[^>]*id="guard-left-out".*?</table>', page, re.S)
    assert left is not None and "site-a" in left[0] and "g&lt;1&gt;" in left[0] and ">6<" in left[0]
    imputed = re.search(r'<table[^>]*id="glm-imputed".*?</table>', page, re.S)
    assert imputed is not None and "site-b" in imputed[0] and ">17<" in imputed[0]
    founders = re.search(r'<table[^>]*id="founders-only".*?</table>', page, re.S)
    assert founders is not None and "site-c" in founders[0] and "x &amp; y" in founders[0]
    plain = render_page(
        outcome.out,
        json.loads((outcome.out / "provenance.json").read_text()),
        sections=REPORT_SECTIONS,
    )
    assert 'id="guard-left-out"' not in plain and 'id="founders-only"' not in plain
