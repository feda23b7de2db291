"""Model bundles: ONNX stage networks + one manifest (the contract between export and runtime)."""

from rscore.bundle.manifest import (
    SCHEMA_VERSION,
    SUPPORTED_SCHEMAS,
    BandSpec,
    BundleError,
    LatentSpec,
    Manifest,
    ScaleRange,
    StageSpec,
    TensorSpec,
    TilingDefaults,
)
from rscore.bundle.store import Bundle, load_bundle, sha256_file, write_bundle

__all__ = [
    "SCHEMA_VERSION",
    "SUPPORTED_SCHEMAS",
    "BandSpec",
    "Bundle",
    "BundleError",
    "LatentSpec",
    "Manifest",
    "ScaleRange",
    "StageSpec",
    "TensorSpec",
    "TilingDefaults",
    "load_bundle",
    "sha256_file",
    "write_bundle",
]
