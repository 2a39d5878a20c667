"""local.check_build on made-up build outputs: ELF machines, layer size, runtime-provided packages."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from local import check_build

AARCH64 = 183
X86_64 = 62


def elf(machine: int, big_endian: bool = False) -> bytes:
    """The first bytes of a 64-bit ELF shared object (e_type ET_DYN = 3) for `machine`."""
    order = ">" if big_endian else "<"
    ident = b"\x7fELF" + bytes([2, 2 if big_endian else 1, 1]) + bytes(9)
    return ident + struct.pack(f"{order}HHI", 3, machine, 1) + bytes(40)


def build_output(root: Path, files: dict[str, bytes]) -> Path:
    """A `.aws-sam/build` lookalike: the three layers under <layer>/python plus the given files."""
    build = root / "build"
    (build / "CheckoutCoreLayer" / "python" / "checkout_core").mkdir(parents=True)
    (build / "CheckoutCoreLayer" / "python" / "checkout_core" / "__init__.py").write_text('"""core"""\n')
    (build / "StripeLayer" / "python" / "stripe").mkdir(parents=True)
    (build / "StripeLayer" / "python" / "stripe" / "__init__.py").write_text('"""sdk"""\n')
    (build / "AdyenLayer" / "python" / "Adyen").mkdir(parents=True)
    (build / "AdyenLayer" / "python" / "Adyen" / "__init__.py").write_text('"""sdk"""\n')
    (build / "GetSessionFunction").mkdir()
    (build / "GetSessionFunction" / "app.py").write_text("lambda_handler = None\n")
    for relative, content in files.items():
        path = build / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return build


@pytest.mark.parametrize(
    ("content", "machine"),
    [
        (elf(AARCH64), AARCH64),
        (elf(X86_64), X86_64),
        (elf(AARCH64, big_endian=True), AARCH64),
        (b"#!/bin/sh\n", None),
        (b"\x7fEL", None),
        (b"", None),
    ],
)
def test_reads_e_machine_of_elf_files_only(tmp_path: Path, content: bytes, machine: int | None) -> None:
    path = tmp_path / "lib.so"
    path.write_bytes(content)
    assert check_build.elf_machine(path) == machine


def test_an_arm64_build_passes_and_prints_the_layer_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a build whose only binary is an aarch64 extension
    build = build_output(
        tmp_path,
        {"CheckoutCoreLayer/python/pydantic_core/_pydantic_core.cpython-311-aarch64-linux-gnu.so": elf(183)},
    )

    # When it is checked
    code = check_build.main([str(build)])

    # Then it passes and says how big the layer is
    assert code == 0
    out = capsys.readouterr().out
    assert "CheckoutCoreLayer: 0.0 MB unzipped (limit 15 MB)" in out
    assert "build check passed" in out


def test_an_x86_64_extension_fails_the_build_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an x86_64 wheel's extension in the layer, even one not named .so
    build = build_output(
        tmp_path,
        {
            "CheckoutCoreLayer/python/pydantic_core/_pydantic_core.cpython-311-x86_64-linux-gnu.so": elf(
                X86_64
            ),
            "CheckoutCoreLayer/python/wrapt/_wrappers.so.1": elf(X86_64),
            "CheckoutCoreLayer/python/ok/_ok.so": elf(AARCH64),
        },
    )

    # When it is checked
    code = check_build.main([str(build)])

    # Then it fails and names both files and their machine
    assert code == 1
    err = capsys.readouterr().err
    assert "_pydantic_core.cpython-311-x86_64-linux-gnu.so: e_machine 62 (x86_64)" in err
    assert "_wrappers.so.1: e_machine 62 (x86_64)" in err
    assert "_ok.so" not in err


def test_a_binary_in_a_function_is_checked_too(tmp_path: Path) -> None:
    build = build_output(tmp_path, {"GetSessionFunction/vendored/_speedups.so": elf(X86_64)})
    assert [b.path.name for b in check_build.foreign_binaries(build)] == ["_speedups.so"]


def test_a_layer_over_the_limit_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a layer of 2 MB and a limit of 1.5 MB
    build = build_output(tmp_path, {"CheckoutCoreLayer/python/big/data.bin": bytes(2 * check_build.MB)})

    # When it is checked
    code = check_build.main([str(build), "--max-layer-mb", "1.5"])

    # Then it fails, giving the size
    assert code == 1
    captured = capsys.readouterr()
    assert "CheckoutCoreLayer: 2.0 MB unzipped (limit 1.5 MB)" in captured.out
    assert "over the 1.5 MB limit" in captured.err


@pytest.mark.parametrize("package", ["boto3", "botocore", "s3transfer"])
def test_a_bundled_runtime_package_fails(
    tmp_path: Path, package: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build = build_output(tmp_path, {f"CheckoutCoreLayer/python/{package}/__init__.py": b""})
    assert check_build.main([str(build)]) == 1
    assert f"python/{package}: provided by the Lambda runtime" in capsys.readouterr().err


def test_a_missing_build_or_layer_fails(tmp_path: Path) -> None:
    assert check_build.check(tmp_path / "nothing") == [
        f"{tmp_path / 'nothing'}: no such directory; run `sam build` first"
    ]
    build = build_output(tmp_path, {})
    assert check_build.check(build, layers=["OtherLayer"]) == [
        f"{build / 'OtherLayer'}: the layer was not built"
    ]
