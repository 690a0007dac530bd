"""docs/figures.md lists every committed picture, and none shows a face whose licence forbids it."""
from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PICTURE = re.compile(r"\.(jpe?g|png|gif|webp|bmp|tiff?)$", re.I)
ALLOWED_FACES = {"none", "London Set"}


def figure_rows(text: str) -> list[tuple[str, str]]:
    """(path pattern, faces) of each row of the table in docs/figures.md."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`") and cells[0].endswith("`"):
            rows.append((cells[0].strip("`"), cells[2]))
    return rows


def require_git_checkout() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")


def tracked_pictures() -> list[str]:
    require_git_checkout()
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [p for p in out.splitlines() if PICTURE.search(p)]


def test_figure_rows_read_the_table():
    text = "| file | what | faces | by |\n|---|---|---|---|\n| `docs/a.png` | a plot | none | `x` |\n"
    assert figure_rows(text) == [("docs/a.png", "none")]


def test_every_committed_picture_is_listed_with_a_shippable_source():
    rows = figure_rows((ROOT / "docs" / "figures.md").read_text())
    assert rows, "docs/figures.md has no table rows"
    bad_source = [(p, faces) for p, faces in rows if faces not in ALLOWED_FACES]
    assert not bad_source, f"rows whose faces are not {sorted(ALLOWED_FACES)}: {bad_source}"
    pictures = tracked_pictures()
    unlisted = [p for p in pictures if not any(fnmatch.fnmatch(p, pat) for pat, _ in rows)]
    assert not unlisted, f"committed pictures missing from docs/figures.md: {unlisted}"
    stale = [pat for pat, _ in rows if not any(fnmatch.fnmatch(p, pat) for p in pictures)]
    assert not stale, f"docs/figures.md lists pictures that are not committed: {stale}"


def test_face_grids_of_research_only_sets_are_ignored():
    """The paths the local grid scripts write (and the old committed grids) are in .gitignore."""
    require_git_checkout()
    paths = ["docs/real_grid.jpg", "docs/whole_grid.png", "docs/bench/grid.png", "docs/fidelity/grid.png",
             "docs/history/training/data_sharpness_faces.jpg", "out/real_grid.jpg", "out/whole_grid.png"]
    res = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=ROOT, capture_output=True, text=True)
    assert sorted(res.stdout.split()) == sorted(paths)
