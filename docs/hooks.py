"""MkDocs hook: publish the committed diagrams/ folder (generated pictures and pages) beside the docs.

The pictures live in the repository's top-level diagrams/, where the tests keep them fresh; this adds them
to the site as diagrams/..., so pages link to them without a copy that could go stale.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files, InclusionLevel


def on_files(files: Files, config: Any) -> Files:
    """Add every file of diagrams/ to the site, its Markdown pages kept out of the navigation."""
    folder = Path(config.config_file_path).parent / "diagrams"
    for path in sorted(folder.iterdir()):
        if path.is_file():
            files.append(
                File.generated(
                    config, f"diagrams/{path.name}", abs_src_path=str(path), inclusion=InclusionLevel.NOT_IN_NAV
                )
            )
    return files
