"""Benchmark: the cost of receipts, the SiteAdmin service and the privacy report on a long log.

Makes one synthetic site, fills its audit log with ``--entries`` entries
(requests, releases and refusals, as a busy year of studies would) and its
ledger with ``--charges`` dp charges, then measures:

* per reply at the site: appending the release entry and building its
  receipt (entry + inclusion proof), and the receipt's size on the wire;
* per reply at the coordinator: :func:`genofed.common.receipts.verify_receipt`;
* the SiteAdmin service: status, budget, and streaming every audit entry,
  against reading the same from the state directly;
* ``genofed-site report``: time to render, and the page's size.

    .venv/bin/python bench/audit_tools.py                  # 5,000 entries, 100 charges
    .venv/bin/python bench/audit_tools.py --entries 20000

Results go to ``bench/out/audit_tools.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from genofed.common.messages import ArraySpec, Receipt, Reply, Request, Status
from genofed.common.receipts import verify_receipt
from genofed.common.study import study_from_mapping
from genofed.common.wire.proto import receipt_to_proto
from genofed.common.wire.records import signed_study
from genofed.coordinator.receipt_check import load_audit_key
from genofed.site_agent.admin import connect, serve_admin
from genofed.site_agent.audit.log import (
    AuditLog,
    AuditPaths,
    refusal_entry,
    release_entry,
    request_entry,
)
from genofed.site_agent.audit.report import render_report
from genofed.site_agent.node import admin_state
from genofed.site_agent.privacy.ledger import LEDGER_FILE, Budget, Ledger, Release
from genofed.synth import write_cohorts

HERE = Path(__file__).resolve().parent
STUDY = study_from_mapping(
    {"study": {"name": "bench"}, "analysis": [{"kind": "freq"}]}, path=Path("<bench>")
)


def _timed(fn: Callable[[], object], repeat: int = 5) -> float:
    """Median wall time of ``fn`` over ``repeat`` calls, in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _request(i: int) -> Request:
    return Request(
        study=signed_study(STUDY, None),
        analysis_id="freq",
        kind="genotype_counts",
        step="genotype_counts",
        round=2,
        run_id=f"run-{i // 3:06d}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=5_000)
    parser.add_argument("--charges", type=int, default=100)
    parser.add_argument("--replies", type=int, default=300, help="receipts built and verified")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="genofed-bench-audit-"))
    try:
        site = write_cohorts(tmp / "c", sites=1, samples=50, variants=20, seed=1).sites[0]
        spec = ArraySpec(name="genotype_counts", dtype="<i8", shape=[2000, 4], sha256="ab" * 32)
        start = datetime(2026, 1, 1, tzinfo=UTC)
        t0 = time.perf_counter()
        with AuditLog.open(site) as log:
            for i in range(args.entries):
                request = _request(i)
                log.append(
                    [
                        request_entry(request),
                        release_entry(request, [spec]),
                        refusal_entry(request, decision="refused", reason="NOT_ALLOWED: bench"),
                    ][i % 3]
                )
        fill_s = time.perf_counter() - t0
        ledger = Ledger(
            site / "state" / LEDGER_FILE,
            Budget(1e9, 1e-6, "lifetime"),
            clock=iter(start + timedelta(hours=h) for h in range(10**6)).__next__,
        )
        for i in range(args.charges):
            ledger.charge(Release(STUDY.sha256, "freq", f"run-{i}", 5.0 + i % 7, 44.7))

        # per reply: append the release entry and build its receipt; then verify it
        key = load_audit_key(AuditPaths.of(site).pub)
        build, verify, sizes = [], [], []
        with AuditLog.open(site) as log:
            for i in range(args.replies):
                request = _request(10**6 + i)
                t0 = time.perf_counter()
                index, checkpoint = log.append(release_entry(request, [spec]))
                leaf, proof = log.proof_of_last(index)  # as the release path builds a receipt
                receipt = Receipt(
                    audited=True,
                    audit_index=index,
                    checkpoint=checkpoint,
                    entry=leaf,
                    inclusion_proof=tuple(proof),
                )
                reply = Reply(
                    site="bench",
                    study_sha256=STUDY.sha256,
                    status=Status.OK,
                    arrays=(spec,),
                    receipt=receipt,
                )
                build.append(time.perf_counter() - t0)
                sizes.append(receipt_to_proto(receipt).ByteSize())
                t0 = time.perf_counter()
                verify_receipt(key, request, reply)
                verify.append(time.perf_counter() - t0)
        n_entries = len(list(admin_state.audit_entries(site)))

        server = serve_admin(site, tmp / "node")
        try:
            client = connect(tmp / "node")
            assert client is not None
            with client:
                service = {
                    "status_s": _timed(client.status),
                    "budget_s": _timed(client.budget),
                    "stream_all_entries_s": _timed(client.audit_entries, 3),
                }
        finally:
            server.stop()
        direct = {
            "status_s": _timed(lambda: admin_state.site_status(site)),
            "budget_s": _timed(lambda: admin_state.budget_report(site)),
            "read_all_entries_s": _timed(lambda: list(admin_state.audit_entries(site)), 3),
        }
        t0 = time.perf_counter()
        page = render_report(site)  # verifies the whole log, reads ledger, approvals, entries
        report_s = time.perf_counter() - t0
        doc = {
            "entries_in_log": n_entries,
            "ledger_charges": args.charges,
            "fill_log_s": round(fill_s, 3),
            "append_plus_receipt_ms_median": round(statistics.median(build) * 1e3, 3),
            "receipt_bytes_median": int(statistics.median(sizes)),
            "verify_receipt_ms_median": round(statistics.median(verify) * 1e3, 3),
            "admin_service": {k: round(v, 4) for k, v in service.items()},
            "direct_read": {k: round(v, 4) for k, v in direct.items()},
            "report_render_s": round(report_s, 3),
            "report_html_bytes": len(page.encode("utf-8")),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "audit_tools.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
