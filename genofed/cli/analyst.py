"""``genofed``: the consortium analyst's command line.

A composition root (it may import both sides): it runs studies on the
simulation engine, makes synthetic cohorts and runs the demo.

Examples::

    genofed demo --out demo
    genofed synth --sites 3 --samples 1500 --variants 2000 --seed 1 --out cohorts
    genofed study run study.toml --simulation --site cohorts/site-a \\
        --site cohorts/site-b --site cohorts/site-c --out results

Exit codes (a test checks that each ``EXIT_*`` constant is documented here and
that each code documented here is used by the code):

* 0 — success
* 1 — unexpected internal error (a bug: one line names the file holding the traceback;
  please report it with that file); for
  ``study conform``: a result differs from plink2 beyond its tolerance
* 2 — bad input: a study file, site directory, option or data file is wrong
* 3 — a site refused or failed a request
* 4 — the sites' variants do not harmonize
* 5 — too few sites: fewer take part than the study's ``[study] min_sites`` (the
  message names the study file and the key), or fewer than ``--sites`` connected
  to the coordinator in time
* 6 — the coordinator cannot be reached (``--superlink``, ``coordinator
  register-site``), the connection to it was lost before it reported a result,
  or (``coordinator up``) its SuperLink stopped by itself
* 7 — a study submitted with ``--superlink`` did not finish in the time
  ``genofed`` waits for it (it may still be running on the coordinator)
* 130 — interrupted (Ctrl-C)

Usage errors of the command line itself (an unknown option) also exit with 2.

Progress (``genofed study run``, ``genofed demo``): on a terminal, a live
display with one line per analysis (its round, the sites that answered this
round, elapsed time, a site that failed or dropped out); when standard output
or standard error is not a terminal, plain lines at analysis boundaries (with
the analysis's time and rounds), and for a round only when a site did not answer
it or it took 5 s or more; ``--quiet``: only the final summary and errors; ``--json``: one
JSON object per line on standard output and nothing else there. Log records
and third-party warnings go to the run log, ``OUT.log`` beside the results
directory.

``--json`` events: every object has ``event``, ``time`` (ISO 8601 UTC),
``elapsed`` (seconds since the study started), ``study`` and ``run_id``, and:

* ``study_started`` — ``sha256``, ``engine``, ``nodes``, ``min_sites``,
  ``analyses`` (``[{"id", "kind"}]``)
* ``analysis_started`` — ``analyses`` (ids: ``[]`` is the variant
  harmonization, the count analyses share one round), ``kind``, ``attempt``
  (2 and up: again without a site that dropped out), ``sites``
* ``round_started`` — ``analyses``, ``round`` (the analysis's own),
  ``study_round``, ``request``, ``sites`` (asked), ``secure``
* ``site_answered`` — ``analyses``, ``round``, ``study_round``, ``request``, ``site``
* ``site_failed`` — those and ``status`` (refused, error, no_reply),
  ``reason_code``, ``message``
* ``site_dropped`` — ``analyses``, ``round``, ``study_round``, ``request``,
  ``site``, ``reason_code``, ``remaining``, ``min_sites``
* ``round_done`` — ``analyses``, ``round``, ``study_round``, ``request``,
  ``asked``, ``answered``, ``seconds``
* ``analysis_done`` — ``analyses``, ``kind``, ``seconds``, ``rounds``, ``outputs``
* ``study_done`` — ``out``, ``outputs``, ``sites``, ``sites_missing``, ``seconds``
* ``study_failed`` — ``error``, ``message``, ``seconds``
* ``result`` — the last line when the study finished: ``study``, ``sha256``,
  ``run_id``, ``out``, ``outputs``, ``sites``, ``summary`` (deployment adds
  ``coordinator_out``)
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from genofed.cli import deploy as deploy_cli
from genofed.cli.exits import (
    EXIT_HARMONIZATION,
    EXIT_INPUT,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_SITE,
    console,
    print_error,
    report_unexpected,
)
from genofed.cli.exits import cli_errors as _errors
from genofed.cli.extras import require_extras
from genofed.cli.failures import (
    EXIT_INTERRUPTED,
    EXIT_TIMEOUT,
    EXIT_TOO_FEW_SITES,
    EXIT_UNREACHABLE,
    run_errors,
)
from genofed.cli.progress import (
    JSON,
    QUIET,
    JsonLines,
    choose_mode,
    progress_display,
    run_log,
    run_log_path,
)
from genofed.common.analyses import PRS_KIND
from genofed.common.errors import InputError
from genofed.common.receipts import GUARD_LEFT_OUT_FACT
from genofed.common.signing import (
    StudySignature,
    generate_private_key,
    is_signed_study_file,
    load_private_key,
    load_signed_study,
    public_key_text,
    sign_study,
    signed_study_json,
    write_keypair,
)
from genofed.common.study import Study, load_study
from genofed.coordinator.runner import StudyOutcome, outcome_doc
from genofed.coordinator.study_files import StudyFiles
from genofed.coordinator.writers.atomic import atomic_write_text

DEMO_STUDY = """\
# GenoFed demo study: the embedded default run by `make demo`.
[study]
name = "demo-qc"
description = "QC, GWAS, PCA, survival, PRS, PGx and a DP risk model at three synthetic hospitals"
on_variant_mismatch = "stop"

[qc]                              # pooled variant QC before the GWAS (plink2's filters);
geno = 0.05                       # every analysis after the count tables uses what it keeps
hwe = 1e-6
maf = 0.01

[cohort]                          # every analysis runs on these samples only (adults here:
where = ["AGE >= 18"]             # the synthetic patients are all 30-80, so none is dropped)

[sample_qc]                       # local sample QC at each site, before any release:
mind = 0.1                        # samples missing > 10 % of calls (plink2 --mind)
het_sd = 5.0                      # heterozygosity F > 5 SD from the site's mean (--het)

[[analysis]]
kind = "freq"

[[analysis]]
kind = "missing"

[[analysis]]
kind = "gcount"

[[analysis]]
kind = "hardy"
midp = false

[[analysis]]
kind = "glm"
id = "gwas_qpheno"
phenotype = "QPHENO"
covariates = ["AGE", "SEX"]

[[analysis]]
kind = "glm"
id = "gwas_disease"
phenotype = "DISEASE"
covariates = ["AGE", "SEX"]

[[analysis]]
kind = "pca"                      # population structure; each site keeps its own scores
n_pcs = 10

[[analysis]]
kind = "glm"                      # QPHENO again, corrected for ancestry: lambda_gc drops
id = "gwas_qpheno_pcs"
phenotype = "QPHENO"
covariates = ["AGE", "SEX", "PC1", "PC2", "PC3", "PC4", "PC5"]

[[analysis]]
kind = "km"                       # recurrence-free survival by genomic risk group
time = "RFS_DAYS"
event = "RFS_EVENT"
group = "RSCORE"
cuts = [18, 31]
grid = [182, 365, 730, 1095, 1461, 1826, 2191, 2557, 2922, 3287, 3652]

[[analysis]]
kind = "cox"                      # hazard ratios, stratified by site
time = "RFS_DAYS"
event = "RFS_EVENT"
covariates = ["RSCORE", "AGE", "SEX"]

[[analysis]]
kind = "prs"                      # polygenic risk score: OR per SD, AUC, calibration
scoring_file = "cohorts/pgs/GENOFED_SIM.txt"   # `genofed demo` writes the absolute path
phenotype = "DISEASE"
covariates = ["AGE", "SEX"]

[[analysis]]
kind = "pgx"                      # star alleles of 6 genes; CYP2C19 poor metabolizers vs response
outcome = "CLOP_EVENT"            # drug response (synth --pgx)
covariates = ["AGE"]
test_gene = "CYP2C19"
test_phenotype = "Poor Metabolizer"

[[analysis]]
kind = "train"                    # risk model: DP-SGD (Opacus) at each site, FedAvg -> model.pt
target = "DISEASE"
variants = []                     # `genofed demo` writes the simulated causal variants' IDs
covariates = ["AGE", "SEX"]
covariate_ranges = [[30, 80], [1, 2]]   # public ranges that scale the covariates
model = "logistic"
rounds = 3
local_epochs = 2
batch_size = 64
learning_rate = 1.0
clipping_norm = 1.0
noise_multiplier = 1.0            # or target_epsilon = 3.0 (each site calibrates its noise)
"""
#: The scoring file as DEMO_STUDY names it; the demo replaces it by the file's absolute path.
DEMO_SCORING_FILE = "cohorts/pgs/GENOFED_SIM.txt"
#: The train analysis's variant list as DEMO_STUDY has it; the demo lists the causal variants.
DEMO_TRAIN_VARIANTS = (
    "variants = []                     # `genofed demo` writes the simulated causal variants' IDs"
)
DEMO_SAMPLES = 1500
DEMO_VARIANTS = 2000

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="GenoFed for consortium analysts: run federated genomic studies.\n\n"
    "Example: genofed demo --out demo",
)
study_app = typer.Typer(no_args_is_help=True, help="Inspect and run studies.")
app.add_typer(study_app, name="study")
for _sub_app, _sub_name in deploy_cli.iter_apps():
    app.add_typer(_sub_app, name=_sub_name)
app.command("app-hash")(deploy_cli.app_hash)

#: Standard output: paths, names and table cells printed as written (no markup, emoji or wrapping).
out_console = Console(markup=False, emoji=False, highlight=False, soft_wrap=True)


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="directory to create")],
    sites: Annotated[int, typer.Option(min=1, help="number of sites")] = 3,
    samples: Annotated[int, typer.Option(min=10, help="total individuals")] = DEMO_SAMPLES,
    variants: Annotated[int, typer.Option(min=1, help="biallelic SNPs")] = DEMO_VARIANTS,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same files)")] = 1,
    pgx: Annotated[
        bool,
        typer.Option(
            "--pgx",
            help="add pharmacogenomic variants (GRCh38) and the CLOP_EVENT drug response",
        ),
    ] = False,
    genotype_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="genotype files: bed (PLINK 1 .bed/.bim/.fam), pgen (PLINK 2 "
            ".pgen/.pvar/.psam), vcf (bgzipped .vcf.gz) or bcf, the same hard calls",
        ),
    ] = "bed",
) -> None:
    """Write synthetic multi-site cohorts (coalescent genotypes, phenotypes, site directories).

    Example: genofed synth --sites 3 --samples 1500 --variants 2000 --seed 1 --out cohorts
    """
    with _errors():
        require_extras("genofed synth", "synth")
    from genofed.synth import write_cohorts

    with _errors(), console.status("simulating cohorts (msprime)"):
        summary = write_cohorts(
            out,
            sites=sites,
            samples=samples,
            variants=variants,
            seed=seed,
            pgx=pgx,
            genotype_format=genotype_format,
        )
    out_console.print(
        f"wrote {len(summary.sites)} site directories and pooled/ under {summary.out} "
        f"({summary.n_samples} samples, {summary.n_variants} variants, seed {summary.seed})"
    )
    for site in summary.sites:
        out_console.print(f"  site: {site}")


def _load_study_file(path: Path) -> tuple[Study, StudySignature | None]:
    """A study from ``study.toml`` (unsigned) or a signed study (``.json``)."""
    if is_signed_study_file(path):
        return load_signed_study(path)
    return load_study(path), None


def _check_named_files(study: Study, study_file: Path) -> None:
    """Read and check the files the study names that are here, where ``study run`` reads them.

    A file that is not here (a deployed study's scoring file lies on the
    coordinator host) is only noted: the coordinator checks it before round 1.
    """
    from genofed.coordinator.protocols.prs import read_scoring_file

    files = StudyFiles.beside(study_file)
    for spec in study.analyses:
        if spec.kind != PRS_KIND:
            continue
        name = spec.params["scoring_file"]
        try:
            present = files.resolve(name, key="scoring_file", analysis=spec.id).is_file()
        except InputError:
            present = False
        if present:
            read_scoring_file(spec, files)
        else:
            print_error(
                "note:",
                f"scoring_file {name!r} of analysis {spec.id!r} is not in the study file's "
                "folder here, so it was not checked; the coordinator reads and checks it "
                "before any site is asked",
                style="yellow",
            )


@study_app.command("keygen")
def study_keygen(
    out: Annotated[Path, typer.Option(help="private key file to create (KEY and KEY.pub)")],
) -> None:
    """Make an Ed25519 key pair for signing studies.

    The private key (PEM, owner-only) stays with you; give the one line in
    KEY.pub to each site's privacy officer for their policy's trusted_analysts.

    Example: genofed study keygen --out ~/.genofed/alice
    """
    with _errors():
        pub = write_keypair(out, generate_private_key())
    out_console.print(f"private key: {out} (keep it secret)")
    out_console.print(f"public key:  {pub}")
    out_console.print(f"  {pub.read_text().strip()}")


@study_app.command("sign")
def study_sign(
    study_file: Annotated[Path, typer.Argument(help="study.toml")],
    key: Annotated[Path, typer.Option(help="your private key (genofed study keygen)")],
    out: Annotated[
        Path | None, typer.Option(help="signed study to write [default: STUDY.signed.json]")
    ] = None,
) -> None:
    """Sign a study's canonical form; sites run only studies signed by analysts they trust.

    Example: genofed study sign study.toml --key ~/.genofed/alice
    """
    with _errors():
        study = load_study(study_file)
        signature = sign_study(study, load_private_key(key))
        target = out or study_file.with_name(study_file.stem + ".signed.json")
        atomic_write_text(target, signed_study_json(study, signature))
    out_console.print(f"signed study: {target}")
    out_console.print(f"sha256: {study.sha256}")
    out_console.print(f"signer: {public_key_text(signature.public_key)}")


@study_app.command("show")
def study_show(
    study_file: Annotated[Path, typer.Argument(help="study.toml or a signed study (.json)")],
) -> None:
    """Validate a study file (and the scoring files it names) and print its canonical form and hash.

    Scoring files are read as ``genofed study run`` reads them: relative to
    the study file's folder, and only inside it.
    """
    with _errors():
        study, signature = _load_study_file(study_file)
        _check_named_files(study, study_file)
    out_console.print_json(study.canonical_json().decode())
    out_console.print(f"sha256: {study.sha256}")
    if signature is not None:
        out_console.print(f"signed by: {public_key_text(signature.public_key)}")


@study_app.command("run")
def study_run(
    study_file: Annotated[Path, typer.Argument(help="study.toml")],
    out: Annotated[Path, typer.Option(help="results directory")],
    site: Annotated[
        list[Path] | None, typer.Option(help="site directory (repeat per site)")
    ] = None,
    simulation: Annotated[bool, typer.Option(help="run on Flower's simulation engine")] = False,
    superlink: Annotated[
        str | None,
        typer.Option(help="run on a live federation: the coordinator's control API HOST:PORT"),
    ] = None,
    sites: Annotated[
        int, typer.Option(min=1, help="with --superlink: how many sites must take part")
    ] = 3,
    ca_cert: Annotated[
        Path | None, typer.Option(help="with --superlink: the consortium CA certificate")
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="with --superlink: PLAINTEXT, test setups only")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="replace an existing results directory")] = False,
    site_timeout: Annotated[
        float,
        typer.Option(
            min=1,
            help="seconds to wait for a site's reply; then the site drops out if the study's "
            "min_sites allows, else the study stops naming it",
        ),
    ] = 600.0,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="print one JSON object per progress event on stdout, the summary last "
            "(nothing else there)",
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="no progress: only the summary and errors")
    ] = False,
    verbose: Annotated[
        bool, typer.Option(help="show Flower's own logs and other libraries' warnings")
    ] = False,
) -> None:
    """Run a study and write plink2-compatible results.

    Example: genofed study run study.toml --simulation --site a --site b --site c --out results

    Live federation (results come back to --out here; the coordinator keeps a copy):
    genofed study run study.toml --superlink coord:9093 --ca-cert ca.pem --sites 3 --out results
    """
    if simulation == (superlink is not None):
        console.print(
            "[bold red]error:[/] choose where to run: --simulation (with --site DIR per site) "
            "or --superlink HOST:PORT (a live federation)"
        )
        raise typer.Exit(EXIT_INPUT)
    mode = choose_mode(as_json=as_json, quiet=quiet, console=console)
    if superlink is not None:
        _study_run_deployed(
            study_file, out, superlink, sites, ca_cert, insecure, overwrite, mode, site_timeout
        )
        return
    with _errors():
        require_extras("genofed study run --simulation", "simulation")
    from genofed.simulation import run_simulated_study

    log_file = run_log_path(out)
    with _errors(), run_errors(study_file):
        study, signature = _load_study_file(study_file)
        with (
            run_log(log_file, console, verbose=verbose),
            progress_display(mode, console) as progress,
        ):
            outcome = run_simulated_study(
                study,
                site or [],
                out,
                overwrite=overwrite,
                progress=progress,
                verbose=verbose,
                signature=signature,
                site_timeout=site_timeout,
                study_files=StudyFiles.beside(study_file),
            )
    _report(outcome, progress, log_file)


def _study_run_deployed(
    study_file: Path,
    out: Path,
    superlink: str,
    sites: int,
    ca_cert: Path | None,
    insecure: bool,
    overwrite: bool,
    mode: str,
    site_timeout: float,
) -> None:
    from genofed.coordinator.deploy.submit import Submission, submit_study

    if insecure:
        console.print("[bold red]WARNING: --insecure: the study travels in PLAINTEXT.[/]")
    log_file = run_log_path(out)
    with _errors(), run_errors(study_file, remote=True):
        _load_study_file(study_file)  # a clear error here rather than on the coordinator
        with run_log(log_file, console), progress_display(mode, console) as progress:
            outcome = submit_study(
                Submission(
                    study_file=study_file,
                    superlink=superlink,
                    out=out,
                    expected_sites=sites,
                    ca_cert=ca_cert,
                    insecure=insecure,
                    overwrite=overwrite,
                    site_timeout_s=site_timeout,
                ),
                emit=(lambda _line: None)
                if mode in (JSON, QUIET)
                else (lambda line: console.print(f"  {line}", highlight=False, markup=False)),
                on_event=progress,
                log_path=log_file,
            )
    if isinstance(progress, JsonLines):
        progress.result(outcome.doc)
        return
    out_console.print(
        f"study {outcome.doc['study']} ({str(outcome.doc['sha256'])[:12]}) finished in "
        f"{outcome.seconds:.1f} s on {len(outcome.doc['sites'])} sites"
    )
    if outcome.doc["out"] is None:
        console.print(
            "[bold yellow]warning:[/] the results are too large to stream back; they are on "
            f"the coordinator host in {outcome.doc['coordinator_out']}",
            highlight=False,
        )
    else:
        out_console.print(f"results: {outcome.out}")
        out_console.print(f"  (the coordinator keeps a copy in {outcome.doc['coordinator_out']})")
    _warn_missing(outcome.doc.get("summary", {}))
    if outcome.doc["out"] is not None:
        for name in outcome.doc["outputs"]:
            out_console.print(f"  {outcome.out / str(name)}")
    _say_log(log_file)


@study_app.command("report")
def study_report(
    results: Annotated[Path, typer.Argument(help="a results directory (genofed study run --out)")],
    out: Annotated[
        Path | None, typer.Option(help="HTML file to write [default: RESULTS/report.html]")
    ] = None,
) -> None:
    """Render the study's HTML report again from a results directory.

    Reads RESULTS/provenance.json and the result files; the page is the one
    the run wrote (study, sites, privacy, one section per analysis).

    Example: genofed study report results --out qc-report.html
    """
    from genofed.coordinator.protocols import REPORT_SECTIONS
    from genofed.coordinator.writers.analyst_report import rewrite_report

    with _errors():
        target = rewrite_report(results, out, sections=REPORT_SECTIONS)
    out_console.print(f"report: {target}")


@study_app.command("conform")
def study_conform(
    study_file: Annotated[Path, typer.Argument(help="study.toml or a signed study (.json)")],
    out: Annotated[
        Path, typer.Option(help="directory to create (cohorts, results, conform.tsv)")
    ] = Path("conform"),
    samples: Annotated[int, typer.Option(min=30, help="synthetic individuals")] = 600,
    variants: Annotated[int, typer.Option(min=1, help="synthetic biallelic SNPs")] = 400,
    seed: Annotated[int, typer.Option(help="random seed of the synthetic cohort")] = 11,
    site: Annotated[
        list[Path] | None,
        typer.Option(
            help="a site directory holding test data (repeat per site): run on these sites, "
            "pooled for plink2, instead of synthetic ones (--samples, --variants and --seed "
            "are then unused)"
        ),
    ] = None,
) -> None:
    """Check a study against plink2 on a synthetic 3-site federation, before real data.

    With --site DIR (repeated), on those sites instead: their files are pooled
    for plink2 (the same variants and alleles at every site; each individual
    at one site). Such a site answers as it does any study (its policy, guard
    and audit log apply): use test copies, with a policy that lets the study run.

    Runs the study's analyses (its parameters) on synthetic sites and plink2
    (lifelines for km and cox, from genofed[dev]) on the same individuals
    pooled; prints and writes (OUT/conform.tsv) the largest difference per
    output column with pass/fail against the documented tolerances. Exit 0
    if all pass, 1 if any fails, 2 on bad input or when plink2 (or, for km
    and cox, lifelines) is missing.

    Example: genofed study conform study.toml --out conform
    """
    import shutil

    plink2 = shutil.which("plink2")
    if plink2 is None:
        console.print(
            "[bold red]error:[/] plink2 is not on the PATH; `genofed study conform` runs it "
            "as the reference (install it, e.g. apt-get install plink2)"
        )
        raise typer.Exit(EXIT_INPUT)
    with _errors():
        require_extras("genofed study conform", "synth")
    from genofed.cli.conform import conform_study
    from genofed.coordinator.conform import FAIL, PASS, SURVIVAL_KINDS, all_pass, run_plink2

    with _errors(), run_errors(study_file):
        study, _signature = _load_study_file(study_file)
        if any(a.kind in SURVIVAL_KINDS for a in study.analyses):
            # km and cox are checked against lifelines, a development dependency
            require_extras("genofed study conform (km, cox)", "dev")
        if out.exists() and any(out.iterdir()):
            raise InputError(
                "the conform directory is not empty",
                path=out,
                hint="remove it or pick another --out",
            )
        what = (
            f"conform on {len(site)} sites"
            if site
            else f"conform: {samples} synthetic samples x {variants} variants"
        )
        with console.status(what):
            outcome = conform_study(
                study,
                out,
                run_plink2(Path(plink2)),
                samples=samples,
                variants=variants,
                seed=seed,
                sites=site or (),
            )
    table = Table(title=f"conform {study.name}: federated vs plink2 / lifelines on pooled data")
    for col in ("analysis", "column", "max |diff|", "max rel", "tolerance", "status"):
        table.add_column(col)
    style = {PASS: "green", FAIL: "bold red"}
    for r in outcome.rows:
        cells = r.cells()
        status = Text(r.status, style=style.get(r.status, "yellow"))
        table.add_row(
            r.analysis,
            r.column,
            cells[5],
            cells[6],
            r.tolerance,
            Text.assemble(status, f": {r.note}") if r.note else status,
        )
    out_console.print(table)
    out_console.print(f"conform table: {outcome.tsv}")
    if not all_pass(outcome.rows):
        console.print("[bold red]conform: some columns differ from plink2 beyond tolerance[/]")
        raise typer.Exit(EXIT_INTERNAL)


def _say_log(log_file: Path) -> None:
    if log_file.is_file():
        console.print(f"run log: {log_file}", highlight=False, markup=False)


def _report(outcome: StudyOutcome, display: object, log_file: Path | None = None) -> None:
    if isinstance(display, JsonLines):  # --json: the last line of the event stream
        display.result(outcome_doc(outcome))
        return
    sites = Table(title=f"study {outcome.study.name} ({outcome.study.sha256[:12]})")
    for col in ("site", "samples", "variants", "swapped", "policy"):
        sites.add_column(col)
    swapped = {r.site: r.n_swapped for r in outcome.harmonization.reports}
    for s in outcome.sites:
        sites.add_row(
            s.name,
            s.facts.get("n_samples", "?"),
            s.facts.get("n_variants", "?"),
            str(swapped.get(s.name, 0)),
            s.facts.get("policy", ""),
        )
    out_console.print(sites)
    results = Table(title="results")
    results.add_column("analysis")
    results.add_column("summary")
    for key, value in outcome.summary.items():
        if isinstance(value, dict):
            results.add_row(key, ", ".join(f"{k} = {v}" for k, v in value.items()))
        else:
            results.add_row(key, str(value))
    out_console.print(results)
    out_console.print(f"results: {outcome.out}")
    for name in outcome.outputs:
        out_console.print(f"  {outcome.out / name}")
    _warn_missing(outcome.summary)
    if log_file is not None:
        _say_log(log_file)


def _warn_missing(summary: object) -> None:
    """Say loudly which sites dropped out of a study that went on without them, and which
    analyses a site's disclosure guard served over fewer samples than asked."""
    missing = summary.get("sites_missing") if isinstance(summary, dict) else None
    for m in missing or []:
        console.print(
            f"[bold yellow]warning:[/] {m['site']} dropped out at round {m['round']} "
            f"({m['step']}, {m['reason_code']}); these results come from the other sites",
            highlight=False,
        )
    left = summary.get(GUARD_LEFT_OUT_FACT) if isinstance(summary, dict) else None
    for m in left or []:
        console.print(
            Text.assemble(
                ("warning:", "bold yellow"),
                f" {m['site']} served {m['analysis']} over the samples of an earlier release, "
                f"leaving out {m['samples']} of the samples asked for (they would have differed "
                "from that release by fewer than its min_cell_count people)",
            ),
            highlight=False,
        )


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="demo directory to create")] = Path("demo"),
    samples: Annotated[int, typer.Option(min=10)] = DEMO_SAMPLES,
    variants: Annotated[int, typer.Option(min=1)] = DEMO_VARIANTS,
    seed: Annotated[int, typer.Option()] = 1,
) -> None:
    """Synthetic 3-site cohort + a federated QC study on the simulation engine.

    Example: genofed demo --out demo
    """
    with _errors():
        require_extras("genofed demo", "synth", "simulation", "plot", "train")
    from genofed.simulation import run_simulated_study
    from genofed.synth import write_cohorts

    log_file = run_log_path(out / "results")
    with _errors(), run_errors():
        if out.exists() and any(out.iterdir()):
            raise InputError(
                "the demo directory is not empty", path=out, hint="remove it or pick another --out"
            )
        with console.status(
            f"simulating 3 synthetic hospitals ({samples} samples, {variants} variants)"
        ):
            cohorts = write_cohorts(
                out / "cohorts", sites=3, samples=samples, variants=variants, seed=seed, pgx=True
            )
        study_file = out / "study.toml"
        causal = ", ".join(f'"{v}"' for v in cohorts.causal_variants)
        study_file.write_text(
            DEMO_STUDY.replace(DEMO_SCORING_FILE, str(cohorts.scoring_file)).replace(
                DEMO_TRAIN_VARIANTS, f"variants = [{causal}]  # causal variants (truth.json)"
            ),
            encoding="utf-8",
        )
        study = load_study(study_file)
        mode = choose_mode(as_json=False, quiet=False, console=console)
        with run_log(log_file, console), progress_display(mode, console) as progress:
            outcome = run_simulated_study(
                study,
                list(cohorts.sites),
                out / "results",
                progress=progress,
                study_files=StudyFiles.beside(study_file),
            )
    _report(outcome, progress, log_file)
    _demo_privacy_officer(outcome, cohorts.sites[0], out)
    out_console.print(
        f"\nstudy file: {study_file}\npooled cohort for reference checks: {cohorts.pooled}\n"
        f"compare with: plink2 --bfile {cohorts.pooled}/pooled"
        " --freq --hardy --missing --geno-counts"
    )


def _demo_privacy_officer(outcome: StudyOutcome, site_dir: Path, out: Path) -> None:
    """The demo's receipt checks, and one site's privacy report (genofed-site report)."""
    from genofed.site_agent.audit.report import write_report

    checks = [
        str(r["receipt"].get("receipt_check", ""))
        for s in outcome.sites
        for r in s.replies
        if isinstance(r.get("receipt"), dict)
    ]
    verified = sum(c == "verified" for c in checks)
    out_console.print(f"receipts verified against each site's audit key: {verified}/{len(checks)}")
    with _errors():
        report = write_report(site_dir, out / f"{site_dir.name}-privacy-report.html")
    out_console.print(f"privacy officer's report for {site_dir.name}: {report}")


def main() -> None:  # pragma: no cover - console entry point
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # dp-accounting logs each RDP order it drops as unconverged (a conservative bound): noise
    logging.getLogger("absl").setLevel(logging.ERROR)
    try:
        app()
    except SystemExit:
        raise
    except Exception as exc:  # a bug: one line naming the file with the traceback
        report_unexpected(exc)
        sys.exit(EXIT_INTERNAL)


__all__ = [
    "EXIT_HARMONIZATION",
    "EXIT_INPUT",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_SITE",
    "EXIT_TIMEOUT",
    "EXIT_TOO_FEW_SITES",
    "EXIT_UNREACHABLE",
    "app",
    "main",
]
