"""The benchmark page is written by ``benchmarks/`` (``--write-docs``) and shows its tables and plot.

Fake rows only: no timing, no DeePMD-kit. ``benchmarks/common.py`` writes a section and
assembles ``results.md`` in a temporary ``docs/benchmarks``; ``docs/_ext/dpdocs.py`` turns
it into the included page, and a small Sphinx build with warnings as errors proves the
plot's path resolves from ``docs/benchmarks.md``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from doc_examples import DOCS, REPO

sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(DOCS / "_ext"))
import common  # noqa: E402
import dpdocs  # noqa: E402

MACHINE = "- fake machine for the test\n"
FAKE_PNG = b"\x89PNG\r\n\x1a\nnot really an image"  # write_docs_section copies bytes; Sphinx only checks it exists


def _fake_rows() -> list[dict]:
    import scaling

    return [
        scaling.row_of("ours: pt (.pth)", "pt", True, {192: 0.01, 384: 0.02}, {192: -29943.4, 384: -59886.8}),
        scaling.row_of("DeePMD-kit 3.2.0: PyTorch", "pt", False, {192: 0.02, 384: 0.04}, {192: -29943.4, 384: -59886.8}),
        {"implementation": "ours: tf (.savedmodel)", "framework": "tf", "ours": True, "note": "Error: a | b"},
    ]


def test_section_writer_assembles_results(tmp_path: Path) -> None:
    folder = tmp_path / "docs" / "benchmarks"
    png = tmp_path / "plot.png"
    png.write_bytes(FAKE_PNG)
    common.write_docs_section("infer", "Inference", "| a | b |\n|---|---|\n| 1 | 2 |\n", folder=folder, machine=MACHINE)
    results = common.write_docs_section("scaling", "Scaling", "![plot](scaling.png)\n\n| x |\n|---|\n| 3 |\n",
                                        files={"scaling.png": png}, folder=folder, machine=MACHINE)
    assert results == folder / "results.md"
    text = results.read_text()
    assert text.index("## Scaling") < text.index("## Inference"), "scaling comes first (SECTION_ORDER)"
    assert "![plot](scaling.png)" in text and "| 1 | 2 |" in text and text.count("fake machine") == 2
    assert (folder / "scaling.png").read_bytes() == FAKE_PNG
    assert sorted(p.name for p in (folder / "sections").iterdir()) == ["infer.md", "scaling.md"]
    assert not list(folder.rglob("*.tmp")), "temporary files left behind"
    # a second run of one script replaces its section, the other stays
    common.write_docs_section("infer", "Inference again", "new table\n", folder=folder, machine=MACHINE)
    text = results.read_text()
    assert "## Inference again" in text and "| 1 | 2 |" not in text and "## Scaling" in text


def test_scaling_section_table_and_plot_reach_the_page(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    import scaling

    rows = _fake_rows()
    text = scaling.markdown(rows, [192, 384])
    assert "| ours: pt (.pth) | 10 | 20 |" in text and "| DeePMD-kit 3.2.0: PyTorch | 20 | 40 |" in text
    assert "Error: a \\| b" in text, "a | inside a cell is escaped"
    assert "| ours: pt (.pth) | 2 | 2 |" in text, "speed relative to DeePMD-kit's fastest"
    png = scaling.plot(rows, tmp_path / "out" / scaling.PLOT_NAME)
    assert png.read_bytes().startswith(b"\x89PNG")
    docs = tmp_path / "docs"
    common.write_docs_section("scaling", "Scaling", f"![time vs atoms]({scaling.PLOT_NAME})\n\n{text}",
                              files={scaling.PLOT_NAME: png}, folder=docs / "benchmarks", machine=MACHINE)
    page = dpdocs.benchmarks_markdown(docs)
    assert "Placeholder" not in page
    assert f"![time vs atoms](benchmarks/{scaling.PLOT_NAME})" in page, "path relative to docs/benchmarks.md"
    assert "| ours: pt (.pth) | 10 | 20 |" in page


def test_machine_description_names_command_cpu_and_versions() -> None:
    text = common.machine_description(command="python benchmarks/scaling.py --repeat 3")
    for field in ("- command: `python benchmarks/scaling.py --repeat 3`", "- date: ", "- CPU: ", "logical cores",
                  "- GPU: ", "- this project: git ", "numpy "):
        assert field in text
    assert common.command_line([str(REPO / "benchmarks" / "scaling.py"), "--cells", "2x2x1"]) == \
        "python benchmarks/scaling.py --cells 2x2x1"


def test_supercell_tiles_with_lattice_vectors() -> None:
    coord = [[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]
    box = [10.0, 0, 0, 1.0, 10.0, 0, 0, 0, 10.0]
    big, cell, types = common.supercell(coord, box, [0, 1], (2, 2, 1))
    assert big.shape == (8, 3) and list(types) == [0, 1] * 4
    assert cell.tolist() == [20.0, 0, 0, 2.0, 20.0, 0, 0, 0, 10.0]
    assert big[2:4].tolist() == [[1.0, 10.0, 0.0], [2.0, 12.0, 3.0]]  # image (0, 1, 0): shifted by b


def test_plot_path_resolves_in_a_sphinx_build(tmp_path: Path) -> None:
    """The page as docs/benchmarks.md includes it: image found, no warning (-W)."""
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_parser")
    src, out = tmp_path / "src", tmp_path / "html"
    png = tmp_path / "plot.png"
    png.write_bytes(FAKE_PNG)
    common.write_docs_section("scaling", "Scaling", "![time vs atoms](scaling.png)\n\n| x |\n|---|\n| 3 |\n",
                              files={"scaling.png": png}, folder=src / "benchmarks", machine=MACHINE)
    (src / dpdocs.GENERATED).mkdir()
    (src / dpdocs.GENERATED / "benchmarks.md").write_text(dpdocs.benchmarks_markdown(src))
    (src / "conf.py").write_text('extensions = ["myst_parser"]\n'
                                 'exclude_patterns = ["_generated/*.md", "benchmarks/*"]\n')
    include = (DOCS / "benchmarks.md").read_text()
    assert "```{include} _generated/benchmarks.md" in include, "docs/benchmarks.md includes the generated page"
    (src / "index.md").write_text("# Benchmarks\n\n```{include} _generated/benchmarks.md\n```\n")
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", str(src), str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert (out / "_images" / "scaling.png").is_file()
    assert 'src="_images/scaling.png"' in (out / "index.html").read_text()


def test_training_speed_reads_display_intervals_of_both_logs() -> None:
    """train_speed.py times steps by the display intervals each program logs (lines as they print them)."""
    import train_speed

    ours = ("15:23:13 INFO    step 1/600: rmse_trn 2.4e+01; lr 5.00e-03; 5.94 s for 1 steps (5.9351 s/step), ETA 9m\n"
            "15:23:20 INFO    step 200/600: rmse_trn 9.1e-01; lr 1.00e-03; 4.10 s for 199 steps (0.0206 s/step), ETA 8s\n"
            "15:23:24 INFO    step 400/600: rmse_trn 8.0e-01; lr 3.00e-05; 3.90 s for 200 steps (0.0195 s/step), ETA 4s\n")
    theirs = ("[2026-11-28 15:31:44,542] DEEPMD INFO    Batch     100: total wall time = 4.29 s, eta = 0:00:04 at x\n"
              "[2026-11-28 15:31:47,612] DEEPMD INFO    Batch     200: trn: rmse = 8.21e-01, rmse_e = 4.10e-03\n"
              "[2026-11-28 15:31:47,613] DEEPMD INFO    Batch     200: total wall time = 3.07 s, eta = 0:00:00 at x\n"
              "[2026-11-28 15:31:47,777] DEEPMD INFO    average training time: 0.0297 s/batch\n")
    assert train_speed.display_laps(ours) == [(1, 5.94, 1), (200, 4.10, 199), (400, 3.90, 200)]
    assert train_speed.display_laps(theirs) == [(100, 4.29, 100), (200, 3.07, 100)]
