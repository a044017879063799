"""The compiled engine: the reference engine's event loop and the built-in schedulers' rules
in numba, with bit for bit the same results, for the runs :func:`fast_path_gap` accepts
(``simulate`` picks it by itself). :mod:`.support` says which runs those are without
importing numba; :mod:`.runner` drives the compiled loop of :mod:`.kernel`.
"""

from llm_serving_env.sim.fast.support import ENGINES, fast_path_gap

__all__ = ["ENGINES", "fast_path_gap"]
