"""Where numba caches the compiled engine, keyed by the engine's own source.

numba checks a cached function only against the file that defines it, and freezes the
functions it calls from other files (and module constants) into the cached code: after an edit
to ``rules.py`` or ``layout.py`` (or an upgrade of the package), a cache keyed by
``kernel.py`` alone would load the old engine. So the engine's functions are cached in a
directory named by a hash of every source file of this package (``NUMBA_CACHE_DIR`` if set,
else ``~/.cache/llm_serving_env/numba``, then the hash): any change compiles afresh once.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path
from types import ModuleType

import numba

__all__ = ["kernel_module", "source_digest"]

_HERE = Path(__file__).resolve().parent


def source_digest() -> str:
    """SHA-256 (first 16 hex digits) of the compiled engine's source files and numba's
    version."""
    digest = hashlib.sha256(numba.__version__.encode())
    for path in sorted(_HERE.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def kernel_module() -> ModuleType:
    """The compiled engine's :mod:`.kernel`, imported with numba's cache directory set to
    this source's own (see the module docstring); numba's setting is restored afterwards."""
    name = f"{__package__}.kernel"
    module = importlib.sys.modules.get(name)
    if module is not None:
        return module
    base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "llm_serving_env", "numba")
    before = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = os.path.join(base, source_digest())
    try:  # the cache location of each function is fixed when it is decorated (imported)
        return importlib.import_module(name)
    finally:
        numba.config.CACHE_DIR = before
