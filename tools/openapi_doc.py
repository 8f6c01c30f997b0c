"""Write the API's OpenAPI document to docs/openapi.json (the committed copy a test keeps in step).

.venv/bin/python tools/openapi_doc.py          # rewrite docs/openapi.json from the code
.venv/bin/python tools/openapi_doc.py --check  # exit 1 if the committed copy differs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "bridge")]

DOCUMENT = ROOT / "docs" / "openapi.json"


def rendered() -> str:
    from bridge.api.http_api import openapi_document

    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    text = rendered()
    if args.check:
        if not DOCUMENT.exists() or DOCUMENT.read_text(encoding="utf-8") != text:
            print(f"{DOCUMENT.relative_to(ROOT)} differs from the code's document: run tools/openapi_doc.py")
            return 1
        return 0
    DOCUMENT.write_text(text, encoding="utf-8")
    print(f"wrote {DOCUMENT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
