"""``lcurve.out``: the learning curve in DeePMD-kit's layout (SPEC 8.4).

::

    #  step     rmse_val    rmse_trn  rmse_e_val  rmse_e_trn  rmse_f_val  rmse_f_trn        lr
    # If there is no available reference data, rmse_*_{val,trn} will print nan
          1     1.23e+01    1.30e+01    ...

Columns: the step, then for each metric (``rmse``, ``rmse_e``, ``rmse_f``, and
``rmse_v`` when the virial term is active) its validation and training value (only
``_trn`` without validation data), then the learning rate. Rows: step ``%7d``,
metrics ``%11.2e``, lr ``%8.1e``. ``numpy.genfromtxt(path, names=True)`` reads it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from dpmodel.io import atomic_write

__all__ = ["Lcurve"]

NOTE = "# If there is no available reference data, rmse_*_{val,trn} will print nan\n"


class Lcurve:
    """Writer of ``lcurve.out``.

    Parameters
    ----------
    path : Path
        The file (``training/disp_file``).
    metrics : sequence of str
        Metric names in column order.
    has_valid : bool
        Whether validation columns are written.
    resume_after : int or None
        On restart, the checkpoint step: rows after it are dropped and new rows are
        appended; None starts a new file.
    """

    def __init__(self, path: str | Path, metrics: Sequence[str], has_valid: bool,
                 resume_after: int | None = None) -> None:
        self.path, self.metrics, self.has_valid = Path(path), list(metrics), has_valid
        if resume_after is not None and self.path.is_file():
            self._truncate(resume_after)
        else:
            atomic_write(self.path, lambda tmp: Path(tmp).write_text(self.header()))

    def header(self) -> str:
        """The two comment lines."""
        text = "# %5s" % "step"
        for name in self.metrics:
            text += "   %11s %11s" % (f"{name}_val", f"{name}_trn") if self.has_valid else "   %11s" % f"{name}_trn"
        return text + "   %8s\n" % "lr" + NOTE

    def _truncate(self, step: int) -> None:
        """Keep the header and the rows up to ``step``."""
        kept = []
        for line in self.path.read_text().splitlines(keepends=True):
            fields = line.split()
            if line.startswith("#") or not fields or int(fields[0]) <= step:
                kept.append(line)
        atomic_write(self.path, lambda tmp: Path(tmp).write_text("".join(kept)))

    def write(self, step: int, train: Mapping[str, float], valid: Mapping[str, float] | None, lr: float) -> None:
        """Append one row and flush it."""
        row = "%7d" % step
        for name in self.metrics:
            if self.has_valid:
                row += "   %11.2e %11.2e" % (valid[name], train[name])
            else:
                row += "   %11.2e" % train[name]
        with open(self.path, "a") as f:
            f.write(row + "   %8.1e\n" % lr)
