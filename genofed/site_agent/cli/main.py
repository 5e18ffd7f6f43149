"""``genofed-site``: the hospital-side command line.

Hospital IT uses it to create a site directory from local PLINK and phenotype
files and to check an existing one. It only reads local files and writes the
site directory; nothing here talks to the network.

Exit codes:

* ``0`` (EXIT_OK): success.
* ``1`` (EXIT_UNEXPECTED): an unexpected error (a bug): one line names the file
  holding its traceback (in the temporary folder); please report it with that file.
* ``2`` (EXIT_INPUT): bad input or configuration (a file, a flag, a TOML
  file); the message says what, where and how to fix it. Typer's own usage
  errors (unknown flag, missing option) also exit with 2.
* ``3`` (EXIT_AUDIT_FAILED, ``audit verify`` only): the audit log does not
  verify (:mod:`genofed.site_agent.cli.audit`).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from genofed.site_agent.cli import admin as admin_cli
from genofed.site_agent.cli import approvals as approvals_cli
from genofed.site_agent.cli import audit as audit_cli
from genofed.site_agent.cli import node as node_cli
from genofed.site_agent.cli.exits import (
    EXIT_INPUT,
    EXIT_OK,
    EXIT_UNEXPECTED,
    console,
    report_unexpected,
    run_guarded,
)
from genofed.site_agent.privacy.policy import POLICY_FILE, SitePolicy, load_policy
from genofed.site_agent.sitedir import SiteSummary, init_site, inspect_site, load_site

log = logging.getLogger("genofed.site")
app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="GenoFed site agent: prepare and check this hospital's site directory.",
)
app.add_typer(audit_cli.app, name="audit")  # exit code 3: see genofed.site_agent.cli.audit
app.command("up")(node_cli.up)  # connects to the coordinator: see genofed.site_agent.cli.node
app.command("app-hash")(node_cli.app_hash)
app.command("status")(admin_cli.status)  # SiteAdmin service or state: genofed.site_agent.cli.admin
app.command("budget")(admin_cli.budget)
app.command("report")(admin_cli.report)  # HTML for the privacy officer
app.command("approve")(
    approvals_cli.approve_cmd
)  # study approvals: genofed.site_agent.privacy.approvals
app.command("refuse")(approvals_cli.refuse_cmd)
app.command("studies")(approvals_cli.studies_cmd)


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details.")] = False,
) -> None:
    """Attach the log handler here, in the entry point, and nowhere else."""
    if not any(getattr(h, "_genofed_cli", False) for h in log.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler._genofed_cli = True  # type: ignore[attr-defined]
        log.addHandler(handler)
    log.setLevel(logging.DEBUG if verbose else logging.WARNING)
    # dp-accounting (via absl) warns for each RDP order it drops as unconverged; dropping an
    # order only makes its epsilon bound conservative, so it is noise to the privacy officer
    logging.getLogger("absl").setLevel(logging.DEBUG if verbose else logging.ERROR)


def _summary_json(summary: SiteSummary, policy: SitePolicy) -> str:
    c = summary.config
    return json.dumps(
        {
            "name": c.name,
            "directory": str(c.directory),
            "genotypes": str(c.genotypes),
            "phenotypes": str(c.phenotypes) if c.phenotypes else None,
            "covariates": str(c.covariates) if c.covariates else None,
            "n_samples": summary.n_samples,
            "n_variants": summary.n_variants,
            "genotype_format": summary.genotype_format,
            "chromosomes": dict(summary.chromosomes),
            "n_multiallelic": summary.n_split_records,
            "n_split_variants": summary.n_split_variants,
            "max_alts": summary.max_alts,
            "n_long_alleles": summary.n_long_alleles,
            "has_dosages": summary.has_dosages,
            "genome_build": summary.genome_build,
            "n_with_phenotypes": summary.n_with_phenotypes,
            "n_matched": summary.n_matched,
            "phenotype_columns": list(summary.phenotype_columns),
            "covariate_columns": list(summary.covariate_columns),
            "policy": {
                "demo": policy.demo,
                "allowed_analyses": sorted(policy.allowed_analyses),
                "min_cohort_size": policy.min_cohort_size,
                "min_cell_count": policy.min_cell_count,
                "max_membership_power": policy.max_membership_power,
                "membership_fpr": policy.membership_fpr,
            },
        },
        indent=2,
    )


_CHROMOSOMES_SHOWN = 30


def _chromosome_text(chromosomes: tuple[tuple[str, int], ...]) -> str:
    shown = ", ".join(f"{c} ({n:,})" for c, n in chromosomes[:_CHROMOSOMES_SHOWN])
    more = len(chromosomes) - _CHROMOSOMES_SHOWN
    return shown + (f", and {more} more" if more > 0 else "")


def _dosage_text(summary: SiteSummary) -> str:
    if not summary.has_dosages:
        return "none (hard calls)"
    return (
        "present; GenoFed reads the hard calls for now (plink2 --glm/--freq would use the "
        "dosages, so imputed variants differ from plink2 on the same files)"
    )


def _split_text(summary: SiteSummary) -> str:
    if not summary.n_split_records:
        return "none (every record biallelic)"
    return (
        f"{summary.n_split_records:,} split into {summary.n_split_variants:,} biallelic "
        f"variants, one per ALT, as bcftools norm -m- (at most {summary.max_alts} ALTs "
        "in one record)"
    )


def _membership_text(policy: SitePolicy) -> str:
    if policy.max_membership_power is None:
        return "none (max_membership_power not set): count releases are not checked"
    reference = policy.membership_reference.name if policy.membership_reference else "own"
    return (
        f"power of the membership test at most {policy.max_membership_power:g} at "
        f"false-positive rate {policy.membership_fpr:g} ({reference} frequencies as reference)"
    )


def _print_summary(summary: SiteSummary, policy: SitePolicy, *, as_json: bool) -> None:
    out = console()
    if as_json:
        out.print_json(_summary_json(summary, policy))
        return
    c = summary.config
    table = Table(title=f"site {escape(c.name)}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    rows = [
        ("directory", str(c.directory)),
        ("genotypes", str(c.genotypes)),
        ("format", summary.genotype_format),
        ("samples", f"{summary.n_samples:,}"),
        ("variants", f"{summary.n_variants:,}"),
        ("chromosomes", _chromosome_text(summary.chromosomes)),
        ("multi-allelic records", _split_text(summary)),
        ("indels and longer alleles", f"{summary.n_long_alleles:,}"),
        ("dosages", _dosage_text(summary)),
        ("genome build", summary.genome_build),
    ]
    if c.phenotypes is not None:
        rows.append(("phenotype columns", ", ".join(summary.phenotype_columns) or "(none)"))
        rows.append(("samples with phenotypes", f"{summary.n_with_phenotypes:,}"))
    if c.covariates is not None:
        rows.append(("covariate columns", ", ".join(summary.covariate_columns) or "(none)"))
    if summary.n_matched is not None:
        rows.append(("matched samples", f"{summary.n_matched:,}"))
    allowed = ", ".join(sorted(policy.allowed_analyses)) or "none: refuses every study"
    rows.append(("allowed analyses", allowed))
    rows.append(("membership limit", _membership_text(policy)))
    for what, value in rows:
        table.add_row(what, escape(value))
    out.print(table)
    if policy.demo:
        out.print(
            "[bold red]DEMO POLICY: FOR SYNTHETIC DATA ONLY.[/] [red]It accepts unsigned "
            "studies from anyone. Never use it with real patient data.[/]"
        )
    else:
        out.print(
            f"Policy: {escape(str(c.directory / POLICY_FILE))} (the privacy officer edits "
            "it to allow analyses)."
        )


@app.command()
def init(
    name: Annotated[str, typer.Option(help="Site name: letters, digits, '_', '.', '-'.")],
    genotypes: Annotated[
        Path,
        typer.Option(
            help="PLINK 1 (X.bed/.bim/.fam) or PLINK 2 (X.pgen/.pvar/.psam) fileset "
            "(any of its files or the prefix X), or a VCF/BCF file (X.vcf.gz, X.bcf); "
            "the format is read from the content."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Site directory to create or fill.")],
    phenotypes: Annotated[
        Path | None, typer.Option(help="Phenotype table (#FID IID cols...).")
    ] = None,
    covariates: Annotated[
        Path | None, typer.Option(help="Covariate table (#FID IID cols...).")
    ] = None,
    build: Annotated[
        str | None,
        typer.Option(
            help="Genome build of the files: GRCh37 or GRCh38 (checked against a VCF/.pvar "
            "header's ##contig lengths; studies refuse sites on different builds)."
        ),
    ] = None,
    demo_policy: Annotated[
        bool, typer.Option("--demo-policy", help="Write the demo policy: FOR SYNTHETIC DATA ONLY.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Check the data files, then write site.toml, policy.toml and state/ into --out.

    state/ holds the site's new audit key and log; give state/audit.pub to
    the privacy officer. Nothing is written if any file is wrong. Without --demo-policy the policy
    refuses every study until the privacy officer edits it.

    Example:

        genofed-site init --name hospital-a --genotypes data/cohort.bed \\
            --phenotypes data/pheno.tsv --covariates data/covar.tsv --out site-a
    """
    summary = run_guarded(
        lambda: init_site(
            out,
            name=name,
            genotypes=genotypes,
            phenotypes=phenotypes,
            covariates=covariates,
            build=build,
            demo_policy=demo_policy,
        )
    )
    policy = run_guarded(lambda: load_policy(summary.config.directory / POLICY_FILE))
    _print_summary(summary, policy, as_json=as_json)


@app.command()
def check(
    directory: Annotated[Path, typer.Argument(help="Site directory holding site.toml.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Re-read a site directory's files and print the same summary as init.

    Example:

        genofed-site check site-a
    """
    summary = run_guarded(lambda: inspect_site(load_site(directory)))
    policy = run_guarded(lambda: load_policy(summary.config.directory / POLICY_FILE))
    _print_summary(summary, policy, as_json=as_json)


def main() -> None:
    """The ``genofed-site`` entry point: :data:`app`, and an error outside its wrappers as one line.

    Each command runs its work through :func:`run_guarded`; whatever escapes
    one (printing a summary, say) is reported the same way here instead of as
    Typer's traceback, which would show local values.
    """
    try:
        app()
    except SystemExit:
        raise
    except Exception as exc:
        report_unexpected(exc)
        sys.exit(EXIT_UNEXPECTED)


__all__ = ["EXIT_INPUT", "EXIT_OK", "EXIT_UNEXPECTED", "app", "main"]


if __name__ == "__main__":  # pragma: no cover
    main()
