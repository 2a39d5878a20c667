"""Checks the output of `sam build` before it is deployed to arm64 Lambda.

    python -m local.check_build .aws-sam/build [--layer CheckoutCoreLayer] [--max-layer-mb 15]

Fails (exit 1, naming the files) when
- any ELF file (a compiled extension `.so`, a shared library, an executable) is not built for aarch64:
  an x86_64 wheel picked by mistake would only fail at import time, in Lambda;
- the layer is larger than the limit, unzipped;
- the layer bundles a package that the Lambda runtime already provides (boto3, botocore, s3transfer):
  a second botocore would shadow the runtime's and no longer match the runtime's boto3.
Prints the layer's size in MB (1 MB = 1,048,576 bytes) and its largest top-level entries.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ELF_MAGIC = b"\x7fELF"
EM_AARCH64 = 183
MACHINE_NAMES = {
    3: "x86",
    8: "mips",
    20: "ppc",
    21: "ppc64",
    40: "arm",
    62: "x86_64",
    183: "aarch64",
    243: "riscv",
}
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")
MB = 1024 * 1024
DEFAULT_LAYERS = ("CheckoutCoreLayer", "StripeLayer", "AdyenLayer")
DEFAULT_MAX_LAYER_MB = 15.0


@dataclass(frozen=True)
class ForeignBinary:
    path: Path
    machine: int

    def describe(self) -> str:
        name = MACHINE_NAMES.get(self.machine, "unknown")
        return f"{self.path}: e_machine {self.machine} ({name}), expected {EM_AARCH64} (aarch64)"


def elf_machine(path: Path) -> int | None:
    """The ELF header's e_machine of a file, or None if the file is not ELF."""
    with path.open("rb") as handle:
        header = handle.read(20)
    if len(header) < 20 or not header.startswith(ELF_MAGIC):
        return None
    # e_ident[EI_DATA] (byte 5): 1 = little-endian, 2 = big-endian; e_machine is the half-word at 18.
    if header[5] == 2:
        return int.from_bytes(header[18:20], "big")
    return int.from_bytes(header[18:20], "little")


def regular_files(root: Path) -> Iterator[Path]:
    for directory, _dirs, names in os.walk(root):
        for name in names:
            path = Path(directory, name)
            if path.is_file() and not path.is_symlink():
                yield path


def foreign_binaries(root: Path) -> list[ForeignBinary]:
    """Every ELF file under root whose machine is not aarch64."""
    found = []
    for path in sorted(regular_files(root)):
        machine = elf_machine(path)
        if machine is not None and machine != EM_AARCH64:
            found.append(ForeignBinary(path, machine))
    return found


def size_in_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in regular_files(root))


def largest_entries(root: Path, count: int = 5) -> list[tuple[str, int]]:
    entries = []
    for child in root.iterdir():
        size = size_in_bytes(child) if child.is_dir() else child.stat().st_size
        entries.append((child.name, size))
    return sorted(entries, key=lambda entry: entry[1], reverse=True)[:count]


def check(
    build_dir: Path,
    layers: tuple[str, ...] | list[str] = DEFAULT_LAYERS,
    max_layer_mb: float = DEFAULT_MAX_LAYER_MB,
) -> list[str]:
    """The problems found in a `sam build` output directory (empty when it is fit to deploy)."""
    if not build_dir.is_dir():
        return [f"{build_dir}: no such directory; run `sam build` first"]
    problems = [binary.describe() for binary in foreign_binaries(build_dir)]
    for layer in layers:
        problems += _check_layer(build_dir, layer, max_layer_mb)
    return problems


def _check_layer(build_dir: Path, layer: str, max_layer_mb: float) -> list[str]:
    problems: list[str] = []
    layer_dir = build_dir / layer
    if not layer_dir.is_dir():
        problems.append(f"{layer_dir}: the layer was not built")
        return problems
    size = size_in_bytes(layer_dir)
    print(f"{layer}: {size / MB:.1f} MB unzipped (limit {max_layer_mb:g} MB)")
    packages = layer_dir / "python"
    if packages.is_dir():
        for name, entry_size in largest_entries(packages):
            print(f"  {entry_size / MB:6.1f} MB  {name}")
    if size > max_layer_mb * MB:
        problems.append(f"{layer_dir}: {size / MB:.1f} MB unzipped, over the {max_layer_mb:g} MB limit")
    for package in RUNTIME_PROVIDED:
        if (packages / package).exists():
            problems.append(
                f"{packages / package}: provided by the Lambda runtime, must not be bundled "
                "(find which requirement pulls it in with `pip show`)"
            )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.check_build", description=__doc__.splitlines()[0])
    parser.add_argument("build_dir", nargs="?", default=".aws-sam/build", type=Path)
    parser.add_argument(
        "--layer", action="append", help="logical id of a layer to measure (default: every layer)"
    )
    parser.add_argument("--max-layer-mb", default=DEFAULT_MAX_LAYER_MB, type=float)
    args = parser.parse_args(argv)

    problems = check(args.build_dir, args.layer or DEFAULT_LAYERS, args.max_layer_mb)
    if problems:
        print(f"build check failed ({len(problems)} problem(s)):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print("build check passed: every ELF file is aarch64")
    return 0


if __name__ == "__main__":
    sys.exit(main())
