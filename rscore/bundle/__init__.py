"""Model bundles: ONNX stage networks + one manifest (the contract between export and runtime)."""

from rscore.bundle.manifest import (
    SCHEMA_VERSION,
    BandSpec,
    BundleError,
    Manifest,
    ScaleRange,
    StageSpec,
    TilingDefaults,
)
from rscore.bundle.store import Bundle, load_bundle, sha256_file, write_bundle

__all__ = [
    "SCHEMA_VERSION",
    "BandSpec",
    "Bundle",
    "BundleError",
    "Manifest",
    "ScaleRange",
    "StageSpec",
    "TilingDefaults",
    "load_bundle",
    "sha256_file",
    "write_bundle",
]
