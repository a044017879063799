"""Files the package ships, found with :mod:`importlib.resources` so that they work from a
checkout, an editable install and an installed wheel alike.

* ``configs/``: the named configs (``load_config("default")``, ``--config azure_conv``), with
  ``configs/benchmarks/`` for the learning benchmarks;
* ``traces/``: the public request traces those configs replay, with their provenance and
  licenses in ``traces/README.md``.

In a checkout, ``configs/`` and ``data/traces/`` at the top are links to these folders.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["CONFIGS_DIR", "RESOURCES_DIR", "TRACES_DIR"]

#: The package's resource folder. Installed wheels are unpacked on disk, so this is a real path.
RESOURCES_DIR: Path = Path(str(files(__name__)))
#: Named configs: ``<name>.yaml`` here and in ``benchmarks/``.
CONFIGS_DIR: Path = RESOURCES_DIR / "configs"
#: Shipped traces; a config's relative trace path is also looked up against ``RESOURCES_DIR``.
TRACES_DIR: Path = RESOURCES_DIR / "traces"
