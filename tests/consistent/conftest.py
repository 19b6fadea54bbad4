"""Summary matrix of the consistency grid (cases x backends: pass / refused / FAILED / skip).

Outcomes travel as ``user_properties`` of each test report, so the matrix is complete
also when pytest-xdist runs the grid on several workers.
"""

from __future__ import annotations

from collections import defaultdict

_MATRIX: dict[str, dict[str, str]] = defaultdict(dict)


def pytest_runtest_logreport(report):
    props = dict(report.user_properties)
    if "grid_case" not in props or report.when not in ("call", "setup"):
        return
    if report.when == "setup" and not report.skipped and not report.failed:
        return
    if report.skipped:
        outcome = "skip"
    elif report.failed:
        outcome = "FAILED"
    else:
        outcome = props.get("grid_outcome", "pass")
    _MATRIX[props["grid_case"]][props["grid_backend"]] = outcome


def pytest_terminal_summary(terminalreporter):
    if not _MATRIX:
        return
    from grid_backends import BACKENDS

    columns = [b.name for b in BACKENDS]
    width = max(len(c) for c in _MATRIX) + 2
    write = terminalreporter.write_line
    terminalreporter.section("consistency matrix (outputs vs reference)")
    write("case".ljust(width) + " ".join(c.ljust(14) for c in columns))
    for case in _MATRIX:
        row = _MATRIX[case]
        write(case.ljust(width) + " ".join(row.get(c, "-").ljust(14) for c in columns))
    failed = sum(v == "FAILED" for row in _MATRIX.values() for v in row.values())
    write(f"{failed} failed grid points")
