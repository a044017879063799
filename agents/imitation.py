"""Behaviour cloning: warm-start a ``LLMServing-v1`` policy from a hand-written scheduler.

PPO from a random policy must first discover what every rule already knows (run the decodes,
fill the budget, shortest prompts first). Cloning the best rule's *native* actions (the
micro-steps :class:`~llm_serving_env.env.baseline_agent.BaselineAgent` ``(native=True)`` plays
to compose its batch) starts PPO from that rule instead, as AlphaGo's supervised policy and
DQfD's demonstrations do; PPO then only has to find where deviating pays.

* :func:`collect_demonstrations` plays the expert through the model's own env (same spec,
  same guards, training seeds), recording each micro-step's observation, action mask, action
  and discounted return ``G_t = r_t + g_t G_{t+1}`` (``g_t = gamma_per_s ** dt_t``, the
  discount PPO uses with ``--gamma-per-s``; else the per-step ``gamma``).
* :func:`collect_on_learner` is DAgger's step (Ross, Gordon and Bagnell, AISTATS 2011): the
  clone runs, and at every decision the expert labels the state the clone reached with the
  micro-steps it would take from there. A clone trained on the expert's states alone drifts
  into states the expert never visits and has no label for; aggregating these labels and
  refitting (``dagger_rounds`` in ``train``) teaches it to recover.
* :func:`clone` fits the policy by maximum likelihood of the expert's actions under the mask
  (cross-entropy over the allowed micro-actions) and the critic to the returns (squared
  error), so PPO's first advantages are not those of a random critic. It reports the
  micro-action accuracy on held-out episodes.

With the env's guards on, some of a rule's batches may be forbidden (``slo_triage`` on
``kv_pressure`` admits past the KV reserve the guards keep): such a decision runs the rule's
batch as it is (a ``Batch`` step) and is left unlabelled; the count is reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.actions import make_env
from agents.policy import MAX_MICRO_STEPS, compose_decision, observer_and_kit
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.env.baseline_agent import BaselineAgent
from llm_serving_env.env.native_encoder import CommandEncoder, NotExpressible
from llm_serving_env.sim.batch import Batch, Wait
from llm_serving_env.sim.engine import Simulator
from llm_serving_env.sim.scheduler import (
    DecisionView,
    Scheduler,
    WorkloadLimits,
    make_scheduler,
)
from llm_serving_env.sim.simulate import run_policy

__all__ = ["Demonstrations", "clone", "collect_demonstrations", "collect_on_learner", "merge"]


@dataclass(frozen=True)
class Demonstrations:
    """An expert's micro-steps in a ``LLMServing-v1`` env.

    Attributes:
        observations: float32 ``(T, obs_dim)``.
        masks: bool ``(T, num_actions)``, the env's action mask at each step.
        actions: int64 ``(T,)``, the expert's micro-action.
        returns: float64 ``(T,)``, discounted return from each step to the episode's end.
        episode: int64 ``(T,)``, index of the episode each step belongs to.
        expert: the scheduler's name.
        slo_attainment: float64 ``(episodes,)``, each episode's SLO attainment.
        unlabelled_decisions: decisions whose expert batch the env's guards forbid: the
            expert's batch ran (as a ``Batch`` step) but taught nothing.
    """

    observations: np.ndarray
    masks: np.ndarray
    actions: np.ndarray
    returns: np.ndarray
    episode: np.ndarray
    expert: str
    slo_attainment: np.ndarray
    unlabelled_decisions: int = 0

    def __len__(self) -> int:
        return int(self.actions.shape[0])


def collect_demonstrations(config: SimConfig, spec: Mapping[str, Any],
                           expert: str | Scheduler, seeds: list[int], *,
                           gamma_per_s: float | None = None, gamma: float = 0.99,
                           progress: bool = False) -> Demonstrations:
    """Play ``expert`` (a registered scheduler's name or a Scheduler) natively in
    ``make_env(config, spec)`` (a compose spec) for one episode per seed of ``seeds``."""
    if spec.get("action_space") != "compose":
        raise ValueError("behaviour cloning needs --action-space compose (the expert acts "
                         "through LLMServing-v1's micro-actions)")
    env = make_env(config, spec)
    base = env.unwrapped
    agent = BaselineAgent(expert, native=True)
    name = expert if isinstance(expert, str) else expert.name
    obs_rows: list[np.ndarray] = []
    mask_rows: list[np.ndarray] = []
    actions: list[int] = []
    returns: list[np.ndarray] = []
    episode: list[np.ndarray] = []
    attainment: list[float] = []
    skipped = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(seeds), desc=f"demonstrations of {name}", unit="episode")
    for k, seed in enumerate(seeds):
        obs, _ = env.reset(seed=int(seed))
        if hasattr(expert, "attach"):  # a privileged teacher plans on the env's simulator
            expert.attach(base.sim)
        ep_obs: list[np.ndarray] = []
        ep_masks: list[np.ndarray] = []
        ep_actions: list[int] = []  # -1: a step of a decision the guards kept from labelling
        rewards: list[float] = []
        discounts: list[float] = []
        decision_start = 0
        done = False
        while not done:
            mask = base.action_masks()
            try:
                action: int | Batch | Wait = int(agent.act(env))
            except NotExpressible:  # the guards forbid the expert's batch: run it unlabelled
                ep_actions[decision_start:] = [-1] * (len(ep_actions) - decision_start)
                action = agent.command
                skipped += 1
            ep_obs.append(np.asarray(obs, dtype=np.float32))
            ep_masks.append(mask)
            ep_actions.append(action if isinstance(action, int) else -1)
            obs, reward, terminated, truncated, info = env.step(action)
            if info.get("masked"):
                raise RuntimeError(f"expert {name!r} played a masked action at seed {seed}")
            rewards.append(float(reward))
            discounts.append(gamma_per_s ** float(info["dt_s"]) if gamma_per_s is not None
                             else gamma)
            if info.get("decided"):
                decision_start = len(ep_actions)
            done = terminated or truncated
        g = np.empty(len(rewards))
        acc = 0.0
        for t in range(len(rewards) - 1, -1, -1):  # the episode terminates: no bootstrap
            acc = rewards[t] + discounts[t] * acc
            g[t] = acc
        keep = np.asarray(ep_actions) >= 0
        obs_rows += [row for row, kept in zip(ep_obs, keep, strict=True) if kept]
        mask_rows += [row for row, kept in zip(ep_masks, keep, strict=True) if kept]
        actions += [a for a in ep_actions if a >= 0]
        returns.append(g[keep])
        episode.append(np.full(int(keep.sum()), k, dtype=np.int64))
        attainment.append(float(base.result().summary().get("slo_attainment", np.nan)))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return Demonstrations(np.stack(obs_rows), np.stack(mask_rows).astype(bool),
                          np.asarray(actions, dtype=np.int64), np.concatenate(returns),
                          np.concatenate(episode), name, np.asarray(attainment), skipped)


def clone(model: Any, demos: Demonstrations, *, epochs: int = 10, batch_size: int = 128,
          learning_rate: float = 1e-3, value_coef: float = 0.5, validation_episodes: int = 1,
          seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Fit ``model.policy`` (a MaskablePPO policy) to ``demos``; returns the fit's statistics.

    The last ``validation_episodes`` episodes are held out; the returned ``accuracy`` is the
    share of their micro-steps at which the policy's most likely allowed action is the
    expert's (``train_accuracy`` on the rest), ``value_r2`` the critic's R^2 on them. The
    critic's squared error is divided by the returns' variance, so that returns in the
    hundreds do not drown the policy's cross-entropy (the minimiser is the same).
    """
    import torch

    policy = model.policy
    episodes = int(demos.episode.max()) + 1
    if episodes <= validation_episodes:
        raise ValueError(f"{episodes} demonstration episodes: need more than "
                         f"validation_episodes = {validation_episodes}")
    held = demos.episode >= episodes - validation_episodes
    train_idx = np.flatnonzero(~held)
    obs = torch.as_tensor(demos.observations)
    masks = torch.as_tensor(demos.masks)
    actions = torch.as_tensor(demos.actions)
    returns = torch.as_tensor(demos.returns, dtype=torch.float32)
    known = demos.returns[train_idx]
    known = known[np.isfinite(known)]  # DAgger's states have no return
    value_scale = float(np.var(known)) if known.size > 1 else 1.0
    value_scale = value_scale or 1.0
    optimizer = torch.optim.Adam(policy.parameters(), lr=learning_rate)
    rng = np.random.default_rng(seed)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, desc="behaviour cloning", unit="epoch")
    policy.set_training_mode(True)
    for _ in range(epochs):
        order = rng.permutation(train_idx)
        for start in range(0, order.size, batch_size):
            idx = torch.as_tensor(order[start: start + batch_size])
            values, log_prob, _ = policy.evaluate_actions(obs[idx], actions[idx],
                                                          action_masks=masks[idx])
            target = returns[idx]
            finite = torch.isfinite(target)
            loss = -log_prob.mean()
            if bool(finite.any()):
                value_loss = torch.nn.functional.mse_loss(values.flatten()[finite],
                                                          target[finite])
                loss = loss + value_coef * value_loss / value_scale
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    policy.set_training_mode(False)

    def accuracy(index: np.ndarray) -> tuple[float, float]:
        hits, sq, var = 0, 0.0, 0.0
        finite_index = index[np.isfinite(demos.returns[index])]
        mean = float(demos.returns[finite_index].mean()) if finite_index.size else 0.0
        with torch.no_grad():
            for start in range(0, index.size, 4096):
                idx = torch.as_tensor(index[start: start + 4096])
                dist = policy.get_distribution(obs[idx], action_masks=masks[idx].numpy())
                best = dist.distribution.probs.argmax(dim=1)
                hits += int((best == actions[idx]).sum())
                target = returns[idx]
                finite = torch.isfinite(target)
                v = policy.predict_values(obs[idx]).flatten()
                sq += float(((v - target)[finite] ** 2).sum())
                var += float(((target[finite] - mean) ** 2).sum())
        return hits / max(index.size, 1), (1.0 - sq / var) if var > 0 else float("nan")

    held_idx = np.flatnonzero(held)
    val_acc, val_r2 = accuracy(held_idx)
    train_acc, _ = accuracy(train_idx[rng.permutation(train_idx.size)[:20_000]])
    return {"expert": demos.expert, "episodes": episodes, "micro_steps": len(demos),
            "unlabelled_decisions": demos.unlabelled_decisions,
            "expert_slo_attainment": float(np.mean(demos.slo_attainment)), "epochs": epochs,
            "learning_rate": learning_rate, "accuracy": val_acc, "train_accuracy": train_acc,
            "value_r2": val_r2}


class _DaggerScheduler(Scheduler):
    """Runs the learner (its deterministic micro-steps) and records, at every decision, the
    expert's micro-steps from the same state (DAgger: the expert labels the states the learner
    visits)."""

    name = "dagger"

    def __init__(self, network: Any, expert: Scheduler, sim_config: SimConfig,
                 spec: Mapping[str, Any]) -> None:
        super().__init__(None, sim_config)
        self.network = network
        self.expert = expert
        self.observer, self.kit = observer_and_kit(sim_config, spec)
        self.observations: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []
        self.actions: list[int] = []
        self.skipped = 0  # decisions whose expert command the env's guards forbid

    def check_feasible(self, limits: WorkloadLimits) -> None:
        self.expert.check_feasible(limits)

    def reset(self, rng: np.random.Generator) -> None:
        super().reset(rng)
        self.observer.reset()
        self.expert.reset(rng)

    def _act(self, obs: np.ndarray, mask: np.ndarray) -> int:
        import torch

        with torch.no_grad():
            logits = self.network.forward_actor(torch.as_tensor(obs[None, :]))[0].numpy()
        return int(np.argmax(np.where(mask, logits, -np.inf)))

    def schedule(self, view: DecisionView) -> Batch | Wait:
        context = self.observer.observe(view)[: self.kit.num_global]
        composer = self.kit.composer(view, view.event_pending)
        rows: list[tuple[np.ndarray, np.ndarray, int]] = []
        try:
            encoder = CommandEncoder(composer, self.expert.schedule(view))
            for micro in range(MAX_MICRO_STEPS):
                obs, mask = self.kit.observe(composer, context, micro), composer.mask()
                action = int(encoder.next_action())
                rows.append((obs, mask, action))
                if composer.apply(action) is not None:
                    break
        except NotExpressible:
            self.skipped += 1
            rows = []
        for obs, mask, action in rows:
            self.observations.append(obs)
            self.masks.append(mask)
            self.actions.append(action)
        return compose_decision(self.kit, view, context, self._act, "the learner")


def collect_on_learner(model: Any, config: SimConfig, spec: Mapping[str, Any],
                       expert: str | Scheduler, seeds: list[int]) -> Demonstrations:
    """DAgger's data: run the learner (``model``, a MaskablePPO with a compose policy) as a
    plain scheduler for one episode per seed and label every decision's state with the
    expert's micro-steps. Returns are NaN (no critic target off the expert's own trajectory);
    ``unlabelled_decisions`` counts the decisions whose expert command the env's guards forbid.
    """
    name = expert if isinstance(expert, str) else expert.name
    rule = make_scheduler(config, expert) if isinstance(expert, str) else expert
    dagger = _DaggerScheduler(model.policy.mlp_extractor, rule, config, spec)
    model.policy.set_training_mode(False)
    episode: list[np.ndarray] = []
    attainment: list[float] = []
    for k, s in enumerate(seeds):
        before = len(dagger.actions)
        sim = Simulator(config, seed=int(s))  # what simulate() runs (a Python policy)
        sim.reset()
        if hasattr(rule, "attach"):  # a privileged teacher plans on the learner's simulator
            rule.attach(sim)
        result = run_policy(sim, dagger)
        episode.append(np.full(len(dagger.actions) - before, k, dtype=np.int64))
        attainment.append(float(result.summary().get("slo_attainment", np.nan)))
    n = len(dagger.actions)
    return Demonstrations(np.stack(dagger.observations).astype(np.float32),
                          np.stack(dagger.masks).astype(bool),
                          np.asarray(dagger.actions, dtype=np.int64), np.full(n, np.nan),
                          np.concatenate(episode), name, np.asarray(attainment),
                          dagger.skipped)


def merge(a: Demonstrations, b: Demonstrations) -> Demonstrations:
    """``a`` then ``b`` (``b``'s episodes renumbered after ``a``'s)."""
    offset = int(a.episode.max()) + 1 if len(a) else 0
    return Demonstrations(np.concatenate((a.observations, b.observations)),
                          np.concatenate((a.masks, b.masks)),
                          np.concatenate((a.actions, b.actions)),
                          np.concatenate((a.returns, b.returns)),
                          np.concatenate((a.episode, b.episode + offset)), a.expert,
                          np.concatenate((a.slo_attainment, b.slo_attainment)),
                          a.unlabelled_decisions + b.unlabelled_decisions)
