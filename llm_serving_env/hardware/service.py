"""Batch service time S(b) of one GPU iteration as a function of its token load b.

Models (c, a in milliseconds in the config; everything returned here is in SECONDS):

- ``piecewise_linear``: S(b) = c + a * max(0, b - b0)   (Li et al.; a in ms per token)
- ``staircase``:        S(b) = c + a * ceil(b / b0)     (a in ms per step of b0 tokens)

Write S(b) = c + a * g(b). Noise:

- ``deterministic``: S is the formula; no random numbers are used.
- ``exponential``: per batch, C ~ Exp(mean c) and A ~ Exp(mean a) independently and
  S = C + A * g(b); so E[S] = c + a g(b) and Var[S] = c^2 + a^2 g(b)^2.
- ``gamma``: C and A gamma with means c, a and coefficient of variation cv (shape 1/cv^2);
  Var[S] = cv^2 (c^2 + a^2 g(b)^2).

A zero mean (c = 0 or a = 0) always draws 0.
"""

from __future__ import annotations

import numpy as np

from llm_serving_env.hardware.service_config import ServiceConfig

__all__ = ["ServiceModel"]

#: Number of unit-mean (C, A) noise pairs drawn at once.
NOISE_BLOCK = 4096


class ServiceModel:
    """Batch service time S(b) in seconds for token load b (int >= 1).

    Build with :meth:`from_config`. :meth:`mean_s` is the expectation (vectorized);
    :meth:`sample_s` draws one service time and is cheap enough for the simulator's hot path:
    unit-mean noise for C and A is pre-drawn in blocks of :data:`NOISE_BLOCK` pairs (for each
    block, ``2 * NOISE_BLOCK`` values in one call, C and A alternating) and consumed in call
    order, so a run is deterministic given the generator's seed. Deterministic noise never
    touches the generator.

    Attributes:
        model: ``"piecewise_linear"`` or ``"staircase"``.
        noise: ``"deterministic"``, ``"exponential"`` or ``"gamma"``.
        c_s: mean setup time per batch, seconds.
        a_s: mean cost per token beyond b0 (piecewise_linear) or per b0-token step
            (staircase), seconds.
        b0_tokens: the threshold / step b0, tokens.
        cv: coefficient of variation of C and A for gamma noise, else None.
    """

    def __init__(
        self,
        *,
        model: str,
        c_s: float,
        a_s: float,
        b0_tokens: int,
        noise: str = "deterministic",
        cv: float | None = None,
        rng: np.random.Generator | None = None,
    ) -> None:
        if model not in ("piecewise_linear", "staircase"):
            raise ValueError(f"unknown service model {model!r}")
        if noise not in ("deterministic", "exponential", "gamma"):
            raise ValueError(f"unknown service noise {noise!r}")
        if model == "staircase" and b0_tokens < 1:
            raise ValueError("staircase needs b0_tokens >= 1")
        if noise == "gamma" and not (cv is not None and cv > 0):
            raise ValueError("gamma noise needs cv > 0")
        if noise != "deterministic" and rng is None:
            raise ValueError(f"{noise} service noise needs a numpy Generator (rng)")
        self.model = model
        self.noise = noise
        self.c_s = float(c_s)
        self.a_s = float(a_s)
        self.b0_tokens = int(b0_tokens)
        self.cv = None if noise != "gamma" else float(cv)  # type: ignore[arg-type]
        self._rng = rng if noise != "deterministic" else None
        self._buf: list[float] = []
        self._pos = 0
        # Bind the specialised hot-path implementation once (no per-call branching on kind).
        staircase = model == "staircase"
        if noise == "deterministic":
            self.sample_s = self._det_stair if staircase else self._det_linear  # type: ignore
        else:
            self.sample_s = self._noisy_stair if staircase else self._noisy_linear  # type: ignore

    @classmethod
    def from_config(
        cls, cfg: ServiceConfig, rng: np.random.Generator | None = None
    ) -> ServiceModel:
        """Build from a :class:`ServiceConfig` (ms -> s). ``rng`` is required unless the noise
        is deterministic."""
        return cls(
            model=cfg.model,
            c_s=cfg.c_ms / 1000.0,
            a_s=cfg.a_ms / 1000.0,
            b0_tokens=cfg.b0_tokens,
            noise=cfg.noise,
            cv=cfg.cv,
            rng=rng,
        )

    # -- formula -------------------------------------------------------------------------------

    def load_factor(self, b: int | np.ndarray) -> int | np.ndarray:
        """g(b): ``max(0, b - b0)`` (piecewise_linear) or ``ceil(b / b0)`` (staircase)."""
        arr = np.asarray(b)
        if self.model == "staircase":
            if np.issubdtype(arr.dtype, np.integer):
                g = -(-arr // self.b0_tokens)
            else:
                g = np.ceil(arr / self.b0_tokens)
        else:
            g = np.maximum(arr - self.b0_tokens, 0)
        return g if arr.ndim else g.item()

    def mean_s(self, b: int | np.ndarray) -> float | np.ndarray:
        """Expected service time E[S(b)] = c + a * g(b) in seconds; vectorized over ``b``
        (a scalar gives a float, an array an array of the same shape)."""
        g = np.asarray(self.load_factor(b), dtype=np.float64)
        s = self.c_s + self.a_s * g
        return float(s) if s.ndim == 0 else s

    def sample_s(self, b: int) -> float:
        """One random service time in seconds for token load ``b`` (Python int preferred).

        Consumes one (C, A) noise pair from the pre-drawn block (none for deterministic noise).
        Replaced per instance by a specialised implementation in ``__init__``.
        """
        raise NotImplementedError  # pragma: no cover - always rebound in __init__

    # -- hot path ------------------------------------------------------------------------------

    def _det_linear(self, b: int) -> float:
        g = b - self.b0_tokens
        return self.c_s + self.a_s * g if g > 0 else self.c_s

    def _det_stair(self, b: int) -> float:
        return self.c_s + self.a_s * -(-b // self.b0_tokens)

    def _noisy_linear(self, b: int) -> float:
        i = self._pos
        if i >= len(self._buf):
            self._refill()
            i = 0
        self._pos = i + 2
        buf = self._buf
        g = b - self.b0_tokens
        if g > 0:
            return self.c_s * buf[i] + self.a_s * buf[i + 1] * g
        return self.c_s * buf[i]

    def _noisy_stair(self, b: int) -> float:
        i = self._pos
        if i >= len(self._buf):
            self._refill()
            i = 0
        self._pos = i + 2
        buf = self._buf
        return self.c_s * buf[i] + self.a_s * buf[i + 1] * -(-b // self.b0_tokens)

    def next_noise_block(self) -> np.ndarray:
        """Draw the next block of unit-mean noise: float64 (2 * NOISE_BLOCK,), C and A
        alternating (what :meth:`sample_s` consumes; the compiled engine reads it directly)."""
        rng = self._rng
        if rng is None:
            raise ValueError("deterministic service noise draws no random numbers")
        if self.noise == "exponential":
            return rng.standard_exponential(2 * NOISE_BLOCK)
        cv2 = self.cv * self.cv  # type: ignore[operator]
        return rng.standard_gamma(1.0 / cv2, 2 * NOISE_BLOCK) * cv2

    def _refill(self) -> None:
        """Draw the next block of 2 * NOISE_BLOCK unit-mean values (C, A alternating)."""
        self._buf = self.next_noise_block().tolist()
        self._pos = 0

    # -- display -------------------------------------------------------------------------------

    def describe(self) -> str:
        """One line, e.g. ``S(b) = 45.5 ms + 0.3 ms * max(0, b - 64) [deterministic]``."""
        c_ms, a_ms = self.c_s * 1000.0, self.a_s * 1000.0
        if self.model == "staircase":
            g = f"ceil(b / {self.b0_tokens})"
        else:
            g = f"max(0, b - {self.b0_tokens})"
        if self.noise == "deterministic":
            return f"S(b) = {c_ms:g} ms + {a_ms:g} ms * {g} [deterministic]"
        if self.noise == "exponential":
            law = f"C ~ Exp(mean {c_ms:g} ms), A ~ Exp(mean {a_ms:g} ms)"
        else:
            law = f"C, A ~ Gamma(cv {self.cv:g}) with means {c_ms:g} ms, {a_ms:g} ms"
        return f"S(b) = C + A * {g}; {law}"

    def __repr__(self) -> str:
        return f"ServiceModel({self.describe()})"
