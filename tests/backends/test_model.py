"""Joining and verifying model files, on small fake data wheels."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from smesh.backends import model as model_module
from smesh.backends.model import (
    MODELS,
    ModelSpec,
    cache_dir,
    ensure_model,
    model_status,
    part_paths,
)
from smesh.errors import ModelNotFound

CHUNKS = [b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 5]


def _install_fake_wheels(root: Path, prefix: str, chunks: list[bytes]) -> None:
    for i, chunk in enumerate(chunks, start=1):
        package = root / f"{prefix}{i}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"part{i:02d}.bin").write_bytes(chunk)


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ModelSpec, Path]:
    """A three-part fake model installed on sys.path, and an empty cache directory."""
    prefix = f"smesh_fake_model_{os.getpid()}_part"
    site = tmp_path / "site"
    _install_fake_wheels(site, prefix, CHUNKS)
    monkeypatch.syspath_prepend(str(site))
    joined = b"".join(CHUNKS)
    spec = ModelSpec(
        name="fake",
        title="Fake model",
        distribution="fake-model-part{i}",
        package=prefix + "{i}",
        version="1.0",
        parts=3,
        size=len(joined),
        sha256=hashlib.sha256(joined).hexdigest(),
        filename="fake.gguf",
        extra="fake",
    )
    monkeypatch.setitem(MODELS, "fake", spec)
    cache = tmp_path / "cache"
    monkeypatch.setenv("SMESH_CACHE_DIR", str(cache))
    return spec, cache


def test_join_verifies_and_writes_sidecar(fake: tuple[ModelSpec, Path]) -> None:
    _, cache = fake
    before = model_status("fake")
    assert before.available and before.verified is None and "wheels installed" in before.detail
    path = ensure_model("fake")
    assert path == cache / "fake.gguf"
    assert path.read_bytes() == b"".join(CHUNKS)
    assert (cache / "fake.gguf.verified.json").is_file()
    assert not [p for p in cache.iterdir() if p.name.endswith(".part")]  # no temp left over
    after = model_status("fake")
    assert after.available and after.verified is True


def test_second_start_trusts_the_sidecar_without_hashing(
    fake: tuple[ModelSpec, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    ensure_model("fake")

    def no_hashing(path: Path) -> tuple[int, str]:
        raise AssertionError("re-hashed a file the sidecar vouches for")

    monkeypatch.setattr(model_module, "_hash_file", no_hashing)
    assert ensure_model("fake").is_file()


def test_corrupt_file_of_the_right_size_is_rebuilt(fake: tuple[ModelSpec, Path]) -> None:
    path = ensure_model("fake")
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    old_mtime = path.stat().st_mtime_ns
    path.write_bytes(bytes(data))  # same size, new mtime: the sidecar no longer vouches
    # Coarse filesystem timestamps could give the same mtime within one tick; make it differ.
    os.utime(path, ns=(old_mtime + 10**9, old_mtime + 10**9))
    assert model_status("fake").verified is None
    assert ensure_model("fake").read_bytes() == b"".join(CHUNKS)


def test_partial_file_is_detected_and_rebuilt(fake: tuple[ModelSpec, Path]) -> None:
    spec, cache = fake
    cache.mkdir(parents=True)
    (cache / "fake.gguf").write_bytes(b"GGUF" + b"a" * 10)
    status = model_status("fake")
    assert status.verified is False and "will rebuild" in status.detail
    assert ensure_model("fake").stat().st_size == spec.size


def test_missing_wheel_names_the_exact_install(
    fake: tuple[ModelSpec, Path], tmp_path: Path
) -> None:
    for child in (tmp_path / "site").iterdir():
        if child.name.endswith("part2"):
            (child / "data" / "part02.bin").unlink()
    with pytest.raises(ModelNotFound) as info:
        ensure_model("fake")
    assert "pip install 'fake-model-part2==1.0'" in str(info.value)
    assert info.value.backend == "local"
    status = model_status("fake")
    assert not status.available and "fake-model-part2" in status.detail


def test_all_wheels_missing_points_at_the_extra() -> None:
    spec = ModelSpec(
        name="none",
        title="Absent",
        distribution="absent-part{i}",
        package="smesh_absent_pkg_part{i}",
        version="9",
        parts=2,
        size=1,
        sha256="0",
        filename="x.gguf",
        extra="absent",
    )
    with pytest.raises(ModelNotFound, match=r"pip install 'smesh\[absent\]'"):
        part_paths(spec)


def test_parts_that_do_not_match_the_hash_leave_nothing_behind(
    fake: tuple[ModelSpec, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, cache = fake
    bad = ModelSpec(
        name="fake",
        title=spec.title,
        distribution=spec.distribution,
        package=spec.package,
        version=spec.version,
        parts=3,
        size=spec.size,
        sha256="0" * 64,
        filename="fake.gguf",
        extra="fake",
    )
    monkeypatch.setitem(MODELS, "fake", bad)
    with pytest.raises(ModelNotFound, match="expected"):
        ensure_model("fake")
    assert not (cache / "fake.gguf").exists()
    assert not [p for p in cache.iterdir() if p.name.endswith(".part")]


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SMESH_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "smesh"
    monkeypatch.setenv("SMESH_CACHE_DIR", str(tmp_path / "own"))
    assert cache_dir() == tmp_path / "own"
    monkeypatch.delenv("SMESH_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "smesh"


def test_pinned_embedded_model_facts() -> None:
    spec = MODELS["0.5b"]
    assert (spec.parts, spec.size, spec.version) == (6, 491_400_064, "0.9.0")
    assert spec.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"


def test_installed_wheels_are_found_when_present() -> None:
    status = model_status("0.5b")
    if not status.available:
        pytest.skip(status.detail)
    assert len(part_paths(MODELS["0.5b"])) == 6
