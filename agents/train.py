"""Train a learned scheduler with PPO (stable-baselines3) or MaskablePPO (sb3-contrib).

``llm-serving train --config FILE --algo ppo|maskable_ppo --timesteps N --seed S --out
agents/zoo/NAME.zip`` writes three files:

* ``NAME.zip``: the SB3 model;
* ``NAME.json``: the sidecar: the exact command, the env spec (reward, action space and its
  parameters, env options; evaluation rebuilds the env from it), the config and overrides, the
  episode length, the training seed range, hyperparameters, library versions, wall time;
* ``NAME.curve.csv``: the training curve, one row per finished training episode: timesteps,
  episode return (SLO-meeting requests with the ``goodput`` reward), length, and the episode's
  SLO attainment, goodput and mean TTFT (``RunResult.summary()``).

Episodes are short (``--episode-requests``, default 2,000 arrivals, warm-up 10% of them,
starting from an empty system) so that PPO sees many of them; evaluation runs the full-length
scenario. Training episodes use simulator seeds drawn from ``[0, 10_000)`` (by a generator
seeded with ``--seed`` and the env index); ``llm-serving evaluate`` starts at seed 10,000, so
the evaluation seeds are held out.

Torch runs on one thread (``torch.set_num_threads(1)``); the envs are stepped in-process
(``DummyVecEnv``). A tqdm progress bar shows the timesteps; ``--tensorboard DIR`` also writes
TensorBoard logs (needs the ``tensorboard`` package).
"""

from __future__ import annotations

import csv
import json
import math
import platform
import shlex
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.actions import EpisodeStatsWrapper, SeedRangeWrapper, make_env
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.sim.scheduler import Scheduler

__all__ = ["ALGOS", "TRAIN_SEED_RANGE", "sidecar_path", "curve_path", "train"]

ALGOS = ("ppo", "maskable_ppo")
#: Simulator seeds of training episodes; evaluation seeds start at 10,000.
TRAIN_SEED_RANGE = (0, 10_000)

CURVE_COLUMNS = ("timesteps", "episode", "episode_return", "episode_length", "slo_attainment",
                 "goodput_rps", "ttft_mean_s", "throughput_rps", "wall_s")

#: PPO hyperparameters (SB3 names) used unless overridden.
DEFAULT_HYPER: dict[str, Any] = {
    "n_steps": 512, "batch_size": 256, "n_epochs": 5, "learning_rate": 3e-4, "gamma": 0.99,
    "gae_lambda": 0.95, "clip_range": 0.2, "ent_coef": 0.01, "vf_coef": 0.5,
    "max_grad_norm": 0.5,
}
DEFAULT_NET = (64, 64)


def sidecar_path(model_path: str | Path) -> Path:
    """``NAME.json`` beside ``NAME.zip``."""
    p = Path(model_path)
    return p.with_name(p.name.removesuffix(".zip") + ".json")


def curve_path(model_path: str | Path) -> Path:
    """``NAME.curve.csv`` beside ``NAME.zip``."""
    p = Path(model_path)
    return p.with_name(p.name.removesuffix(".zip") + ".curve.csv")


def library_versions() -> dict[str, str]:
    import gymnasium
    import sb3_contrib
    import stable_baselines3
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__,
            "stable_baselines3": stable_baselines3.__version__,
            "sb3_contrib": sb3_contrib.__version__, "gymnasium": gymnasium.__version__,
            "numpy": np.__version__}


def episode_config(cfg: SimConfig, episode_requests: int | None) -> SimConfig:
    """The training episode's config: ``num_requests = episode_requests`` and a warm-up of 10%
    of them (the reward counts every request; the warm-up only affects the curve's metrics)."""
    if episode_requests is None:
        return cfg
    if episode_requests < 10:
        raise ValueError(f"episode_requests = {episode_requests}: need at least 10")
    return cfg.replace({"num_requests": int(episode_requests),
                        "warmup_requests": int(episode_requests) // 10})


def _callbacks(total: int, curve_file: Path, progress: bool):
    from stable_baselines3.common.callbacks import BaseCallback

    class CurveCallback(BaseCallback):
        """Appends one row per finished episode to the curve CSV (flushed as it goes)."""

        def __init__(self) -> None:
            super().__init__()
            self.rows: list[dict[str, Any]] = []
            self.t0 = time.perf_counter()
            curve_file.parent.mkdir(parents=True, exist_ok=True)
            self._fh = curve_file.open("w", newline="")
            self._writer = csv.DictWriter(self._fh, fieldnames=CURVE_COLUMNS)
            self._writer.writeheader()

        def _on_step(self) -> bool:
            for info in self.locals.get("infos", ()):
                ep = info.get("episode")
                if ep is None:
                    continue
                summary = info.get("episode_summary", {})
                row = {"timesteps": self.num_timesteps, "episode": len(self.rows) + 1,
                       "episode_return": round(float(ep["r"]), 6),
                       "episode_length": int(ep["l"]),
                       **{k: summary.get(k, math.nan) for k in CURVE_COLUMNS[4:8]},
                       "wall_s": round(time.perf_counter() - self.t0, 2)}
                self.rows.append(row)
                self._writer.writerow(row)
                self._fh.flush()
            return True

        def _on_training_end(self) -> None:
            self._fh.close()

    class TqdmCallback(BaseCallback):
        """A tqdm progress bar over timesteps (SB3's own needs ``rich``)."""

        def __init__(self) -> None:
            super().__init__()
            self.bar = None

        def _on_training_start(self) -> None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="training", unit="step", smoothing=0.05,
                            mininterval=1.0)

        def _on_step(self) -> bool:
            self.bar.update(self.num_timesteps - self.bar.n)
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    curve = CurveCallback()
    cbs = [curve] + ([TqdmCallback()] if progress else [])
    return curve, cbs


def train(
    config: SimConfig,
    out: str | Path,
    *,
    algo: str = "ppo",
    timesteps: int = 200_000,
    seed: int = 0,
    episode_requests: int | None = 2000,
    reward: str = "goodput",
    action_space: str = "slo",
    budgets: Sequence[Any] | None = None,
    orders: Sequence[str] | None = None,
    env_options: Mapping[str, Any] | None = None,
    n_envs: int = 4,
    hyper: Mapping[str, Any] | None = None,
    net_arch: Sequence[int] = DEFAULT_NET,
    tensorboard: str | None = None,
    progress: bool = True,
    gamma_per_s: float | None = None,
    bc_expert: str | Scheduler | None = None,
    bc_episodes: int = 20,
    bc_epochs: int = 10,
    dagger_rounds: int = 0,
    config_source: str | None = None,
    overrides: Sequence[str] = (),
    command: str | None = None,
) -> dict[str, Any]:
    """Train and write ``out`` (zip), its sidecar JSON and its curve CSV; returns the sidecar.

    ``config`` is the full scenario (``config_source`` / ``overrides`` only document where it
    came from); training episodes use :func:`episode_config`. ``gamma_per_s``: discount per
    simulated second instead of PPO's per-step ``gamma`` (:mod:`agents.discount`).
    ``bc_expert``: first clone that scheduler's native actions (:mod:`agents.imitation`, compose
    action space only) over ``bc_episodes`` training episodes for ``bc_epochs`` epochs; then PPO
    runs ``timesteps`` steps (0 = the cloned policy alone). ``dagger_rounds``: after cloning,
    that many DAgger rounds, each running the clone on ``max(2, bc_episodes // 4)`` new
    training episodes with the expert labelling its states, then refitting on everything.
    """
    import torch
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

    if algo not in ALGOS:
        raise ValueError(f"algo = {algo!r}: choose from {ALGOS}")
    if timesteps < (0 if bc_expert is not None else 1):
        raise ValueError(f"timesteps = {timesteps}: must be >= 1 (>= 0 with behaviour cloning)")
    if bc_expert is not None and action_space != "compose":
        raise ValueError(f"bc_expert = {bc_expert!r}: behaviour cloning needs the compose "
                         f"action space, not {action_space!r}")
    if tensorboard is not None:
        try:
            import tensorboard as _tb  # noqa: F401
        except ImportError:
            raise ValueError("--tensorboard needs the 'tensorboard' package "
                             "(pip install tensorboard)") from None
    out = Path(out)
    if out.suffix != ".zip":
        raise ValueError(f"--out {out}: the model file must end in .zip")
    torch.set_num_threads(1)
    spec: dict[str, Any] = {"reward": reward, "action_space": action_space,
                            "env_options": dict(env_options or {})}
    if budgets is not None:
        spec["budgets"] = list(budgets)
    if orders is not None:
        spec["orders"] = list(orders)
    ep_cfg = episode_config(config, episode_requests)
    make_env(ep_cfg, spec)  # fail fast on a bad spec, before any process/thread starts

    def factory(i: int):
        def thunk():
            env = make_env(ep_cfg, spec)
            env = SeedRangeWrapper(env, *TRAIN_SEED_RANGE, seed=seed * 1000 + i)
            return EpisodeStatsWrapper(env)
        return thunk

    venv = VecMonitor(DummyVecEnv([factory(i) for i in range(n_envs)]))
    params = {**DEFAULT_HYPER, **dict(hyper or {})}
    params["batch_size"] = min(int(params["batch_size"]), int(params["n_steps"]) * n_envs)
    policy: Any = "MlpPolicy"
    policy_kwargs: dict[str, Any] = {"net_arch": list(net_arch)}
    if action_space == "compose":
        if algo != "maskable_ppo":
            raise ValueError("--action-space compose needs --algo maskable_ppo (its mask is "
                             "part of the action)")
        from agents.policy_net import ComposePolicy, compose_policy_kwargs

        policy = ComposePolicy  # candidates scored with shared weights (Decima-style)
        policy_kwargs = compose_policy_kwargs(make_env(ep_cfg, spec), hidden=int(net_arch[0]))
    if algo == "ppo":
        from stable_baselines3 import PPO as Algo
        from stable_baselines3.common.buffers import RolloutBuffer as Buffer
    else:
        from sb3_contrib import MaskablePPO as Algo
        from sb3_contrib.common.maskable.buffers import MaskableRolloutBuffer as Buffer
    if gamma_per_s is not None:
        from agents.discount import time_discount_buffer

        params["rollout_buffer_class"] = time_discount_buffer(Buffer, gamma_per_s)
    model = Algo(policy, venv, seed=seed, device="cpu", verbose=0,
                 tensorboard_log=tensorboard, policy_kwargs=policy_kwargs, **params)
    cloning: dict[str, Any] | None = None
    t0 = time.perf_counter()
    if bc_expert is not None:
        from agents.imitation import clone, collect_demonstrations, collect_on_learner, merge
        from agents.lookahead import lookahead_expert

        if isinstance(bc_expert, str):  # lookahead:RULE: the clairvoyant teacher around RULE
            bc_expert = lookahead_expert(bc_expert, ep_cfg) or bc_expert

        per_round = max(2, bc_episodes // 4)
        seeds = np.random.default_rng(seed).choice(  # training seeds: evaluation's stay held out
            np.arange(*TRAIN_SEED_RANGE), size=bc_episodes + dagger_rounds * per_round,
            replace=False).tolist()
        demos = collect_demonstrations(ep_cfg, spec, bc_expert, seeds[:bc_episodes],
                                       gamma_per_s=gamma_per_s, gamma=float(params["gamma"]),
                                       progress=progress)
        cloning = clone(model, demos, epochs=bc_epochs, seed=seed, progress=progress)
        rounds = []
        for r in range(dagger_rounds):
            start = bc_episodes + r * per_round
            extra = collect_on_learner(model, ep_cfg, spec, bc_expert,
                                       seeds[start: start + per_round])
            demos = merge(demos, extra)
            fit = clone(model, demos, epochs=max(1, bc_epochs // 2), seed=seed + r + 1,
                        progress=progress)
            rounds.append({"learner_slo_attainment": float(np.mean(extra.slo_attainment)),
                           "labelled_micro_steps": len(extra),
                           "skipped_decisions": extra.unlabelled_decisions,
                           "accuracy": fit["accuracy"]})
        cloning["dagger_rounds"] = rounds
        if hasattr(bc_expert, "considered"):  # the lookahead teacher: how often it deviated
            cloning["teacher"] = {"name": bc_expert.label, "horizon_s": bc_expert.horizon_s,
                                  "decisions_compared": bc_expert.considered,
                                  "decisions_changed": bc_expert.changed}
        cloning["seeds"] = seeds
        cloning["wall_time_s"] = round(time.perf_counter() - t0, 1)
    curve_file = curve_path(out)
    curve, cbs = _callbacks(timesteps, curve_file, progress)
    if gamma_per_s is not None:
        from agents.discount import StepDurations

        cbs = [*cbs, StepDurations()]
    if timesteps > 0:
        model.learn(total_timesteps=timesteps, callback=cbs, progress_bar=False,
                    tb_log_name=out.name.removesuffix(".zip"))
    wall = time.perf_counter() - t0
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    venv.close()
    last = curve.rows[-10:]
    sidecar = {
        "model": out.name,
        "command": command,
        "algo": algo,
        "timesteps": int(model.num_timesteps),
        "requested_timesteps": int(timesteps),
        "seed": seed,
        "config": config_source,
        "overrides": list(overrides),
        "episode_requests": episode_requests,
        "train_seed_range": list(TRAIN_SEED_RANGE),
        "env_spec": spec,
        "n_envs": n_envs,
        "hyperparameters": {k: v for k, v in params.items() if k != "rollout_buffer_class"},
        "gamma_per_s": gamma_per_s,
        "behaviour_cloning": cloning,
        "net_arch": list(net_arch),
        "observation_size": int(venv.observation_space.shape[0]),
        "action_space": str(venv.action_space),
        "episodes": len(curve.rows),
        "last_episodes_mean": ({k: _finite_mean([r[k] for r in last])
                                for k in ("episode_return", "slo_attainment", "goodput_rps")}
                               if last else None),
        "wall_time_s": round(wall, 1),
        "libraries": library_versions(),
        "platform": platform.platform(),
        "curve": curve_file.name,
    }
    sidecar_path(out).write_text(json.dumps(sidecar, indent=2) + "\n")
    return sidecar


def _finite_mean(values: Sequence[float]) -> float | None:
    """Mean of the finite values (None if there are none: no warning on an empty slice)."""
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else None


def command_line(args: Any) -> str:
    """The ``llm-serving train`` command that reproduces a run, from its parsed arguments
    (every option spelled out, ``--no-progress`` left off)."""
    parts = ["llm-serving", "train", "--config", args.config]
    for text in args.set:
        parts += ["--set", text]
    parts += ["--algo", args.algo, "--timesteps", str(args.timesteps), "--seed", str(args.seed),
              "--episode-requests", str(args.episode_requests), "--reward", args.reward,
              "--action-space", args.action_space, "--n-envs", str(args.n_envs)]
    for text in args.hyper:
        parts += ["--hyper", text]
    if args.tensorboard:
        parts += ["--tensorboard", args.tensorboard]
    if getattr(args, "gamma_per_s", None) is not None:
        parts += ["--gamma-per-s", f"{args.gamma_per_s:g}"]
    if getattr(args, "bc_expert", None) is not None:
        parts += ["--bc-expert", args.bc_expert, "--bc-episodes", str(args.bc_episodes),
                  "--bc-epochs", str(args.bc_epochs), "--dagger-rounds",
                  str(args.dagger_rounds)]
    parts += ["--out", str(args.out)]
    return " ".join(shlex.quote(p) for p in parts)
