"""A Decima-style policy for ``LLMServing-v1``: candidates scored one by one with shared weights.

The observation of ``LLMServing-v1`` is a context (global and compose-state features) and two
pages of N entries with one feature layout each: waiting candidates and decodes. A plain MLP
over the flat vector learns one set of weights per page slot, so what it learns about the
third candidate does not transfer to the ninth. :class:`ComposeNet` instead scores every
candidate with the same small network of (its features, the context), as Decima scores
schedulable stages (Mao et al., SIGCOMM 2019), and reads the page-independent actions
(DISPATCH, budget moves, holds, paging) from the context and order-invariant summaries of the
pages (mean and max of the candidate embeddings). The number of parameters does not depend on
N, and a policy trained with one page size runs with another.

:class:`ComposePolicy` plugs it into sb3-contrib's ``MaskablePPO`` (the logits come straight out
of the network; the mask is applied on top by MaskablePPO)::

    model = MaskablePPO(ComposePolicy, env, policy_kwargs=compose_policy_kwargs(env))
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from torch import nn

from llm_serving_env.env.compose_env import (
    CANDIDATE_FEATURES,
    DECODE_FEATURES,
    STATE_FEATURES,
    LLMComposeEnv,
)

__all__ = ["ComposeNet", "ComposePolicy", "compose_policy_kwargs"]


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.Tanh()]
    return nn.Sequential(*layers[:-1])  # no activation after the last layer


class ComposeNet(nn.Module):
    """Logits over the micro-actions and a value latent from a ``LLMServing-v1`` observation.

    Args:
        context_size: global + compose-state features (the observation's first entries).
        num_slots: N, entries per page.
        num_actions: size of the Discrete action space.
        budget_bits, num_holds: J and H of the env's layout (the context-read actions).
        hidden: width of every hidden layer.

    Shapes: ``forward_actor(obs) -> (B, num_actions)``, ``forward_critic(obs) -> (B, hidden)``.
    """

    def __init__(self, context_size: int, num_slots: int, num_actions: int, budget_bits: int,
                 num_holds: int, hidden: int = 64) -> None:
        super().__init__()
        n = self.num_slots = num_slots
        self.context_size = context_size
        self.fw, self.fd = len(CANDIDATE_FEATURES), len(DECODE_FEATURES)
        self.num_actions = num_actions
        self.latent_dim_pi = num_actions
        self.latent_dim_vf = hidden
        self.context = _mlp([context_size, hidden, hidden])
        self.candidate = _mlp([self.fw + hidden, hidden, hidden])
        self.decode = _mlp([self.fd + hidden, hidden, hidden])
        self.pick_head = nn.Linear(hidden, 1)
        self.toggle_head = nn.Linear(hidden, 1)
        self.hold_from_head = nn.Linear(hidden, 1)
        summary = 5 * hidden  # context, candidates' mean and max, decodes' mean and max
        # NEXT_PAGE, FIRST_PAGE, DISPATCH; NEXT_/FIRST_DECODE_PAGE, HOLD_ALL; budget; holds
        self.global_head = nn.Linear(summary, 6 + 2 * budget_bits + 2 * num_holds)
        self.value_head = _mlp([summary, hidden, hidden])
        self._n = n

    def _encode(self, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n, c = self._n, self.context_size
        ctx = torch.tanh(self.context(obs[:, :c]))
        cand = obs[:, c: c + n * self.fw].reshape(-1, self.fw, n).transpose(1, 2)
        dec = obs[:, c + n * self.fw: c + n * (self.fw + self.fd)]
        dec = dec.reshape(-1, self.fd, n).transpose(1, 2)
        expand = ctx.unsqueeze(1).expand(-1, n, -1)
        e_cand = torch.tanh(self.candidate(torch.cat((cand, expand), dim=2)))
        e_dec = torch.tanh(self.decode(torch.cat((dec, expand), dim=2)))
        occupied_c = cand[:, :, :1]  # feature 0 is "occupied" in both layouts
        occupied_d = dec[:, :, :1]
        summary = torch.cat((ctx, _masked_mean(e_cand, occupied_c), _masked_max(e_cand, occupied_c),
                             _masked_mean(e_dec, occupied_d), _masked_max(e_dec, occupied_d)),
                            dim=1)
        return e_cand, e_dec, summary

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_actor(obs), self.forward_critic(obs)

    def forward_actor(self, obs: torch.Tensor) -> torch.Tensor:
        e_cand, e_dec, summary = self._encode(obs)
        g = self.global_head(summary)
        # layout order: PICK (N), NEXT_PAGE, FIRST_PAGE, DISPATCH, TOGGLE (N), NEXT_DECODE_PAGE,
        # FIRST_DECODE_PAGE, HOLD_ALL, HOLD_FROM (N), budget (2J), holds (2H)
        return torch.cat((self.pick_head(e_cand).squeeze(2), g[:, :3],
                          self.toggle_head(e_dec).squeeze(2), g[:, 3:6],
                          self.hold_from_head(e_dec).squeeze(2), g[:, 6:]), dim=1)

    def forward_critic(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.value_head(self._encode(obs)[2]))


def _masked_mean(x: torch.Tensor, occupied: torch.Tensor) -> torch.Tensor:
    return (x * occupied).sum(dim=1) / occupied.sum(dim=1).clamp(min=1.0)


def _masked_max(x: torch.Tensor, occupied: torch.Tensor) -> torch.Tensor:
    return torch.where(occupied > 0, x, torch.full_like(x, -1.0)).max(dim=1).values


class ComposePolicy(MaskableActorCriticPolicy):
    """MaskablePPO's actor-critic with :class:`ComposeNet` as its body and its logits used as
    they are (no extra linear layer). ``net_kwargs``: :class:`ComposeNet`'s arguments but
    ``num_actions`` (see :func:`compose_policy_kwargs`)."""

    def __init__(self, observation_space: gym.spaces.Space, action_space: gym.spaces.Space,
                 lr_schedule: Any, net_kwargs: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        self.net_kwargs = dict(net_kwargs or {})
        kwargs.setdefault("net_arch", [])
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = ComposeNet(num_actions=int(self.action_space.n), **self.net_kwargs)

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        self.action_net = nn.Identity()  # ComposeNet's actor output is the logits
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1),
                                              **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["net_kwargs"] = self.net_kwargs
        return data


def compose_policy_kwargs(env: gym.Env, hidden: int = 64) -> dict[str, Any]:
    """``policy_kwargs`` of :class:`ComposePolicy` for ``env`` (a ``LLMServing-v1`` env or a
    wrapper of one)."""
    base: LLMComposeEnv = env.unwrapped  # type: ignore[assignment]
    return {"net_kwargs": {
        "context_size": base.num_global + len(STATE_FEATURES),
        "num_slots": base.num_slots, "budget_bits": base.layout.budget_bits,
        "num_holds": base.layout.num_holds, "hidden": hidden}}
