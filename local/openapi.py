"""Writes the OpenAPI document Powertools generates from the routes (`make openapi`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from local.functions import layer_paths


def main(argv: list[str]) -> int:
    for path in layer_paths():
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    from checkout_core.openapi import document

    target = Path(argv[0] if argv else "docs/openapi.json")
    target.write_text(json.dumps(json.loads(document()), indent=2) + "\n")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
