#!/usr/bin/env python3
"""Print how the suite's tests map to Complement and sytest names.

Every test's docstring names what it corresponds to, one per line:
    Complement: TestName[/subtest]
    sytest: <sytest name>
Usage: python3 conformance/coverage.py [--missing]
  (default) table of test -> names;  --missing: Complement csapi tests from the checklist not yet covered.
"""

import ast
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKLIST = os.path.join(HERE, "..", "..", "shared", "checklists", "complement-checklist.tsv")
if not os.path.exists(CHECKLIST):
    CHECKLIST = "/work/shared/checklists/complement-checklist.tsv"


def tests():
    for name in sorted(os.listdir(HERE)):
        if not (name.startswith("test_") and name.endswith(".py")):
            continue
        tree = ast.parse(open(os.path.join(HERE, name)).read())
        for node in tree.body:
            if isinstance(node, (ast.AsyncFunctionDef, ast.FunctionDef)) and node.name.startswith("test_"):
                doc = ast.get_docstring(node) or ""
                refs = [l.strip() for l in doc.splitlines() if l.strip().startswith(("Complement:", "sytest:"))]
                yield name, node.name, refs


def main():
    rows = list(tests())
    covered = {r.split(":", 1)[1].strip().split("/")[0].split()[0] for _, _, refs in rows for r in refs if r.startswith("Complement:")}
    if "--missing" in sys.argv:
        with open(CHECKLIST) as f:
            next(f)
            for line in f:
                path, test = line.split("\t")[:2]
                if path.startswith("tests/csapi/") and test not in covered:
                    print(f"{test}\t{path}")
        return
    for fname, test, refs in rows:
        print(f"{fname}::{test}")
        for r in refs:
            print(f"    {r}")
    print(f"\n{len(rows)} tests; {len(covered)} distinct Complement tests referenced")


if __name__ == "__main__":
    main()
