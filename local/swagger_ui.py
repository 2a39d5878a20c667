"""Puts Swagger UI's assets beside the openapi function (`make swagger-ui`), so /v1/docs loads nothing
from another host. They come from a pinned, hash-checked PyPI package and are not kept in git."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENT = ROOT / "functions/openapi/swagger-ui.txt"
TARGET = ROOT / "functions/openapi/swagger_ui"
ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE")


def main() -> int:
    if all((TARGET / name).is_file() for name in ASSETS):
        return 0
    with tempfile.TemporaryDirectory() as download:
        subprocess.run(  # noqa: S603 - fixed arguments: pip, a file of this repository, a temporary folder
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--require-hashes",
                "-r",
                str(REQUIREMENT),
                "-d",
                download,
            ],
            check=True,
        )
        [wheel] = Path(download).glob("*.whl")
        TARGET.mkdir(exist_ok=True)
        with zipfile.ZipFile(wheel) as archive:
            for name in ASSETS:
                (TARGET / name).write_bytes(archive.read(f"swagger_ui/static/{name}"))
    print(f"Swagger UI assets in {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
