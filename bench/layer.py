"""Unzipped size of the layer `sam build` produced, counted as local.check_build counts it."""

from __future__ import annotations

from typing import Any

from bench import harness

BUILD_DIR = harness.ROOT / ".aws-sam" / "build"
LAYER = "CheckoutCoreLayer"


def measure() -> dict[str, Any]:
    from local.check_build import DEFAULT_MAX_LAYER_MB, MB, largest_entries, size_in_bytes

    layer_dir = BUILD_DIR / LAYER
    if not layer_dir.is_dir():
        return {
            "mb": None,
            "limit_mb": DEFAULT_MAX_LAYER_MB,
            "why": f"{layer_dir} not found: run `make build`",
        }
    packages = layer_dir / "python" if (layer_dir / "python").is_dir() else layer_dir
    return {
        "mb": round(size_in_bytes(layer_dir) / MB, 2),
        "limit_mb": DEFAULT_MAX_LAYER_MB,
        "largest": [(name, round(size / MB, 1)) for name, size in largest_entries(packages)],
    }
