"""Where a site keeps its PCA working blocks and its principal-component scores.

Nothing here is ever released: the per-sample blocks of the subspace
iteration and the final scores live under the site's ``state/`` directory,
keyed by the study's hash and the analysis id::

    state/pca/<study sha256>/<analysis id>/iterate.npz   the current step (U, Q, row terms)
    state/pca/<study sha256>/<analysis id>/scores.npz    sample IDs and PC1..PCk scores

A later ``glm`` analysis of the same study reads ``scores.npz`` to use
``PC1``...``PCk`` as covariates (:func:`pc_covariates`). Files are written to
a temporary name and renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genofed.common.errors import InputError, PolicyRefusal
from genofed.common.reasons import BAD_REQUEST
from genofed.common.study import AnalysisSpec, Study
from genofed.common.wire.pca import pc_index, pc_source
from genofed.site_agent.audit.log import STATE_DIR
from genofed.site_agent.io.plink import Samples

ITERATE_FILE = "iterate.npz"
SCORES_FILE = "scores.npz"


@dataclass(frozen=True)
class IterateState:
    """One site's part of the subspace iteration after step ``step``."""

    run_id: str
    step: int
    u: np.ndarray  # (n, l)  K Q_prev at this site's samples
    q: np.ndarray  # (n, l)  the orthonormal block U was made from (zeros at step 0)
    row_scale: np.ndarray  # (n,)
    delta: np.ndarray  # (n,)


def pca_dir(site_dir: Path, study_sha256: str, analysis_id: str) -> Path:
    """The state directory of one pca analysis of one study."""
    return Path(os.path.abspath(site_dir)) / STATE_DIR / "pca" / study_sha256 / analysis_id


def _save(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def save_iterate(directory: Path, state: IterateState) -> None:
    _save(
        directory / ITERATE_FILE,
        run_id=np.array(state.run_id),
        step=np.array(state.step, dtype=np.int64),
        u=state.u,
        q=state.q,
        row_scale=state.row_scale,
        delta=state.delta,
    )


def load_iterate(directory: Path, run_id: str, step: int) -> IterateState:
    """The state the previous step left; refuses a request out of sequence."""
    path = directory / ITERATE_FILE
    if not path.is_file():
        raise PolicyRefusal(BAD_REQUEST, "no PCA iteration is in progress for this analysis")
    with np.load(path) as z:
        state = IterateState(
            run_id=str(z["run_id"]),
            step=int(z["step"]),
            u=z["u"],
            q=z["q"],
            row_scale=z["row_scale"],
            delta=z["delta"],
        )
    if state.run_id != run_id or state.step != step - 1:
        raise PolicyRefusal(
            BAD_REQUEST,
            f"PCA step {step} of run {run_id} does not follow this site's "
            f"step {state.step} of run {state.run_id}",
        )
    return state


def save_scores(directory: Path, samples: Samples, scores: np.ndarray, run_id: str) -> None:
    _save(
        directory / SCORES_FILE,
        fid=np.asarray(samples.fid, dtype=str),
        iid=np.asarray(samples.iid, dtype=str),
        scores=scores,
        run_id=np.array(run_id),
    )
    (directory / ITERATE_FILE).unlink(missing_ok=True)


def pc_covariates(
    site_dir: Path, study_sha256: str, analysis_id: str, samples: Samples, columns: list[int]
) -> np.ndarray:
    """(n, len(columns)) scores of this site's samples, in ``.fam`` order.

    Raises InputError when the study's pca analysis has not run here, or
    when the ``.fam`` changed since it did.
    """
    path = pca_dir(site_dir, study_sha256, analysis_id) / SCORES_FILE
    if not path.is_file():
        raise InputError(
            f"this site holds no scores of the study's pca analysis {analysis_id!r}",
            path=path,
            hint="list the pca analysis before the glm that names PC covariates, "
            "and run the whole study",
        )
    with np.load(path) as z:
        fid, iid, scores = z["fid"], z["iid"], z["scores"]
    same = len(iid) == len(samples.iid) and bool(
        np.all(iid == np.asarray(samples.iid, dtype=str))
        and np.all(fid == np.asarray(samples.fid, dtype=str))
    )
    if not same:
        raise InputError(
            "the PCA scores were computed for other samples than the .fam now lists",
            path=path,
            hint="run the study again so that its pca analysis sees the current samples",
        )
    if columns and max(columns) >= scores.shape[1]:
        raise InputError(
            f"the pca analysis {analysis_id!r} kept {scores.shape[1]} components, "
            f"not PC{max(columns) + 1}",
            path=path,
            hint="raise n_pcs in the pca analysis or name fewer PC covariates",
        )
    return np.ascontiguousarray(scores[:, columns], dtype=np.float64)


def glm_pc_scores(
    site_dir: Path, study: Study, spec: AnalysisSpec, samples: Samples
) -> dict[str, np.ndarray]:
    """The ``PC<k>`` covariates of glm ``spec`` that the study's pca analysis serves.

    Empty when the glm names none, or when no pca analysis precedes it (then
    ``PC<k>`` columns come from the covariate table).
    """
    source = pc_source(study.analyses, spec.id)
    names = [c for c in spec.params["covariates"] if pc_index(c) is not None]
    if source is None or not names:
        return {}
    columns = [pc_index(c) for c in names]
    scores = pc_covariates(
        site_dir, study.sha256, source.id, samples, [c for c in columns if c is not None]
    )
    return {name: scores[:, j] for j, name in enumerate(names)}


__all__ = [
    "IterateState",
    "glm_pc_scores",
    "load_iterate",
    "pc_covariates",
    "pca_dir",
    "save_iterate",
    "save_scores",
]
