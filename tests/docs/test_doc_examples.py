"""The code examples of the documentation run, page by page, and a broken one fails.

See ``doc_examples.py`` (next to this file) for which blocks run and how.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from doc_examples import DOCS, REPO, ExampleError, blocks, pages, prepare_workdir, run_page

RUNNABLE = [page for page in pages() if any(block.runnable for block in blocks(page))]


def test_docs_have_examples() -> None:
    assert len(RUNNABLE) >= 3, f"expected runnable examples in several pages, found {RUNNABLE}"


@pytest.mark.parametrize("page", RUNNABLE, ids=[str(p.relative_to(DOCS)) for p in RUNNABLE])
def test_page_examples_run(page: Path, tmp_path: Path) -> None:
    ran = run_page(blocks(page), prepare_workdir(tmp_path))
    assert ran > 0


def _page(tmp_path: Path, text: str) -> Path:
    page = tmp_path / "page.md"
    page.write_text(text)
    return page


def test_broken_python_example_fails(tmp_path: Path) -> None:
    page = _page(tmp_path, "# t\n\n```python\nx = 1\n```\n\n```python\nassert x == 2, 'x is not 2'\n```\n")
    with pytest.raises(ExampleError, match=r"page\.md:7 failed: AssertionError: x is not 2"):
        run_page(blocks(page), prepare_workdir(tmp_path / "work"))


def test_broken_shell_example_fails(tmp_path: Path) -> None:
    page = _page(tmp_path, "```bash\nmkdir sub && cd sub\n```\n\n```bash\ntest \"$(basename $PWD)\" = sub\nfalse\n```\n")
    with pytest.raises(ExampleError, match=r"page\.md:5 exited with 1"):
        run_page(blocks(page), prepare_workdir(tmp_path / "work"))


def test_blocks_share_state_and_directory(tmp_path: Path) -> None:
    text = ("```bash\nmkdir -p a && cd a && echo 3 > n.txt\n```\n"
            "```python\nimport os\nn = int(open('n.txt').read())\nos.chdir('..')\n```\n"
            "```sh\ntest -d a && test ! -e n.txt\n```\n"
            "```python\nassert n == 3\n```\n")
    assert run_page(blocks(_page(tmp_path, text)), prepare_workdir(tmp_path / "work")) == 4


def test_notest_marker_and_display_languages(tmp_path: Path) -> None:
    text = ("% notest: needs 4 GPUs\n\n```bash\nexit 1\n```\n\n"
            "```console\n$ exit 1\n```\n\n```text\nnot code\n```\n\n"
            "````{note}\n```python\nresult = 'inside a directive'\n```\n````\n\n"
            "```{code-block} python\n:caption: c\nassert result == 'inside a directive'\n```\n")
    found = blocks(_page(tmp_path, text))
    assert [(b.language, b.notest) for b in found] == [
        ("bash", "needs 4 GPUs"), ("console", None), ("text", None), ("python", None), ("python", None)]
    assert run_page(found, prepare_workdir(tmp_path / "work")) == 2


def test_workdir_is_like_a_checkout(tmp_path: Path) -> None:
    work = prepare_workdir(tmp_path / "work")
    assert (work / "examples" / "alloy" / "input.json").is_file()
    assert (REPO / "examples" / "alloy" / "input.json").is_file()
