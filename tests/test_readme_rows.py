"""The README's scheduler rows are the lines the benchmarks wrote, not figures typed by hand."""

import pytest

from benchmarks import readme_rows


def test_the_readme_scheduler_rows_are_the_committed_results():
    readme = readme_rows.README.read_text()
    assert readme_rows.rewritten(readme) == readme, "run python benchmarks/readme_rows.py"
    for name in readme_rows.SOURCES:
        assert f"[{name}.json](benchmarks/results/{name}.json)" in readme


def test_a_readme_without_the_markers_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="markers .* are missing; add them"):
        readme_rows.rewritten("# a README with no scheduler block\n")
