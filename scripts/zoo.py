"""The zoo of broken implementations (``tests/zoo.py``) run through the oracle, from the command
line: ``python -m scripts.zoo`` prints the kill rate and the false positives over three seeds,
``--confusion`` every check of every mutant against its expected diagnosis, and ``--docs PATH``
one real finding per diagnosis, for the docs' table: ``--docs docs/generated/diagnoses.json``
writes that file and the table of docs/diagnoses.md from it, in one command."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from scripts.docs_outputs import DIAGNOSES_JSON, DIAGNOSES_PAGE, diagnoses_page, diagnoses_table
from tests.zoo import confusion, docs_examples, kill_rate


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.zoo", description=__doc__)
    parser.add_argument(
        "--docs",
        metavar="PATH",
        help="write one real example per diagnosis (JSON, for the docs) instead of the kill rate",
    )
    parser.add_argument("--seed", type=int, default=0, help="the seed of --docs (default 0)")
    parser.add_argument(
        "--confusion",
        action="store_true",
        help="every check of every mutant, float32 and float64: expected against found",
    )
    arguments = parser.parse_args()
    if arguments.confusion:
        rows = confusion(seed=arguments.seed)
        off = [row for row in rows if not row[5]]
        width = max(len(row[0]) for row in rows)
        for name, dtype, check, want, got, diagonal in rows:
            mark = "  " if diagonal else "!!"
            print(f"{mark} {name:<{width}} {dtype:<8} {check:<11} {want:<28} {got}")
        print(f"{len(rows) - len(off)} of {len(rows)} on the diagonal")
        raise SystemExit(1 if off else 0)
    if arguments.docs:
        out = pathlib.Path(arguments.docs)
        out.parent.mkdir(parents=True, exist_ok=True)
        examples = docs_examples(arguments.seed)
        out.write_text(json.dumps(examples, indent=2, sort_keys=True) + "\n")
        print(f"{len(examples['examples'])} diagnoses with an example written to {out}")
        if out.resolve() == DIAGNOSES_JSON.resolve():  # the docs' own: their table too
            page = DIAGNOSES_PAGE.read_text(encoding="utf-8")
            DIAGNOSES_PAGE.write_text(diagnoses_page(page, diagnoses_table(examples)))
            print(f"the table of diagnoses written into {DIAGNOSES_PAGE}")
        raise SystemExit(0)
    # python -m tests.zoo: the oracle's kill rate and false positives over three seeds.
    result = kill_rate()
    print(
        f"kill rate {result['killed']}/{result['mutants'] * len(result['seeds'])} "
        f"({result['kill_rate']:.0%}) over seeds {result['seeds']}; false positives "
        f"{len(result['false_positives'])} of {result['correct_runs']} correct runs"
    )
    for miss in result["misses"]:
        print("missed:", miss)
    for fp in result["false_positives"]:
        print("false positive:", fp[0], "seed", fp[1])
        print(fp[2])


if __name__ == "__main__":
    main()
