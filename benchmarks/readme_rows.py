"""Write the README's scheduler rows from the committed benchmark results (or check that they match).

    python benchmarks/readme_rows.py            # rewrites the block in README.md
    python benchmarks/readme_rows.py --check    # exits 1 (naming the file to rerun) if README.md is stale

Each row is the one line of Markdown a benchmark wrote into `benchmarks/results/<name>.md`, with a
link to the JSON beside it, so the README quotes no figure by hand. The block sits between the two
marker comments below; everything else in the README is left as it is. Reads files only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
RESULTS = REPO / "benchmarks" / "results"
SOURCES = ("scheduler_throughput_1000", "scheduler_throughput_10000", "scheduler_quality", "control_plane_round",
           "simulator_scale")
BEGIN = "<!-- scheduler rows: written by `python benchmarks/readme_rows.py` from benchmarks/results/; do not edit -->"
END = "<!-- end of scheduler rows -->"


def row(name: str) -> str:
    """The list item for results/<name>.md: its cells joined, and a link to its JSON."""
    line = (RESULTS / f"{name}.md").read_text().strip()
    cells = [cell.strip() for cell in line.strip("|").split("|") if cell.strip()]
    return f"- **{cells[0]}**: {'; '.join(cells[1:])} ([{name}.json](benchmarks/results/{name}.json))"


def block() -> str:
    """The README's scheduler block, markers included."""
    return "\n".join([BEGIN, *(row(name) for name in SOURCES), END])


def rewritten(readme: str) -> str:
    """`readme` with its scheduler block replaced by `block()`; ValueError when it has no markers."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README.md: the markers {BEGIN!r} ... {END!r} are missing; add them where the rows go")
    return readme[:start] + block() + readme[end + len(END):]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if README.md is stale")
    args = parser.parse_args()
    text = README.read_text()
    new = rewritten(text)
    if args.check:
        if new != text:
            sys.exit("README.md: the scheduler rows differ from benchmarks/results/; run python benchmarks/readme_rows.py")
        return
    README.write_text(new)


if __name__ == "__main__":
    main()
