#!/usr/bin/env python3
"""Writes conformance/data/spec-endpoints.tsv from the Matrix spec's bundled client-server OpenAPI
(shared/matrix-spec/bundled-client-server.json): one line per operation, with the spec version
that added it (`x-addedInMatrixVersion`; empty when the spec does not say, i.e. since v1.0 or
unannotated) and whether it is deprecated. test_versions.py reads the file; run this again when
the spec copy changes:

    python3 conformance/tools/spec_endpoints.py ../shared/matrix-spec/bundled-client-server.json
"""

import json
import os
import sys


def main(spec_path: str) -> None:
    spec = json.load(open(spec_path))
    rows = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if method not in ("get", "put", "post", "delete"):
                continue
            rows.append((method.upper(), path.strip(), op.get("x-addedInMatrixVersion", ""), "deprecated" if op.get("deprecated") else ""))
    rows = sorted(set(rows), key=lambda r: (r[1], r[0]))
    out = os.path.join(os.path.dirname(__file__), "..", "data", "spec-endpoints.tsv")
    with open(out, "w") as f:
        f.write(f"# method\tpath\tadded in\tdeprecated  (from {os.path.basename(spec_path)}, spec version {spec['info']['version']})\n")
        for row in rows:
            f.write("\t".join(row) + "\n")
    print(f"{len(rows)} operations written to {os.path.normpath(out)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/matrix-spec/bundled-client-server.json")
