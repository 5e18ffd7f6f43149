"""A public reference panel's allele frequencies (the membership check's attacker reference).

The policy's ``membership_reference`` names a ``plink2 --freq`` table
(``.afreq``: a ``#CHROM ID REF ALT ... ALT_FREQS ...`` header, one variant per
line) of a public panel, e.g. 1000 Genomes computed with ``plink2 --freq``.
A site variant takes the panel's frequency when the panel has its ID with the
same two alleles (either way round: a swapped pair takes 1 − ALT_FREQS);
variants not in the panel, or multi-allelic there, take NaN and the
membership check falls back to the site's own frequency for them.

Read with the standard library's ``csv`` (the file is small next to the
genotypes: one line per variant); errors name the file and line.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from genofed.common.errors import InputError

_NEEDED = ("ID", "REF", "ALT", "ALT_FREQS")


@dataclass(frozen=True)
class ReferencePanel:
    """ALT frequency of each panel variant by ID, with its REF and ALT."""

    path: Path
    by_id: dict[str, tuple[str, str, float]]

    def alt_frequency(
        self, ids: npt.ArrayLike, ref: npt.ArrayLike, alt: npt.ArrayLike
    ) -> npt.NDArray[np.float64]:
        """The panel's frequency of each given variant's ALT allele; NaN where it has none."""
        rows = zip(np.asarray(ids), np.asarray(ref), np.asarray(alt), strict=True)
        out = np.full(len(np.asarray(ids)), np.nan)
        for i, (vid, r, a) in enumerate(rows):
            row = self.by_id.get(str(vid))
            if row is None:
                continue
            p_ref, p_alt, freq = row
            if (p_ref, p_alt) == (str(r), str(a)):
                out[i] = freq
            elif (p_ref, p_alt) == (str(a), str(r)):
                out[i] = 1.0 - freq
        return out


def read_panel(path: Path) -> ReferencePanel:
    """Read a ``.afreq`` table; :class:`InputError` naming the line for anything malformed."""
    path = Path(path)
    by_id: dict[str, tuple[str, str, float]] = {}
    try:
        with path.open(newline="") as fh:
            rows = csv.reader(fh, delimiter="\t")
            header = next(rows, None)
            if header is None or not header[0].startswith("#"):
                raise InputError(
                    "the membership reference panel has no '#CHROM ...' header line",
                    path=path,
                    line=1,
                    hint="give a plink2 --freq output (.afreq)",
                )
            names = [header[0].lstrip("#"), *header[1:]]
            missing = [c for c in _NEEDED if c not in names]
            if missing:
                raise InputError(
                    f"the membership reference panel lacks column(s) {', '.join(missing)}",
                    path=path,
                    line=1,
                    hint="give a plink2 --freq output (.afreq): #CHROM ID REF ALT ALT_FREQS",
                )
            col = {c: names.index(c) for c in _NEEDED}
            for number, row in enumerate(rows, start=2):
                if not row:
                    continue
                alt = row[col["ALT"]]
                if "," in alt:  # multi-allelic in the panel: no one ALT frequency
                    continue
                try:
                    freq = float(row[col["ALT_FREQS"]])
                except (ValueError, IndexError) as exc:
                    raise InputError(
                        "the membership reference panel has a malformed line",
                        path=path,
                        line=number,
                        hint="each line needs an ALT_FREQS number between 0 and 1",
                    ) from exc
                if not 0 <= freq <= 1:
                    raise InputError(
                        f"ALT_FREQS {freq} is not a frequency",
                        path=path,
                        line=number,
                        hint="ALT_FREQS must lie between 0 and 1",
                    )
                by_id[row[col["ID"]]] = (row[col["REF"]], alt, freq)
    except OSError as exc:
        raise InputError(
            f"cannot read the membership reference panel: {exc}",
            path=path,
            hint="check policy.membership_reference",
        ) from exc
    return ReferencePanel(path, by_id)


__all__ = ["ReferencePanel", "read_panel"]
