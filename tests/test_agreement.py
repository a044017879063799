"""agents.agreement: the share of decisions at which a policy's batch equals each rule's."""

from __future__ import annotations

import numpy as np
from helpers import assert_same_result

import llm_serving_env as lse
from agents.agreement import same_command, state_dependence
from llm_serving_env.sim.batch import Batch, Wait
from llm_serving_env.sim.scheduler import NoParams, Scheduler, make_scheduler

CFG = lse.load_config("configs/benchmarks/tight_ttft.yaml").replace(
    {"num_requests": 600, "warmup_requests": 60})


def test_same_command_ignores_order_but_not_content():
    a = Batch.of({3: 10, 1: 5}, [7, 2])
    assert same_command(a, Batch.of({1: 5, 3: 10}, [2, 7]))
    assert not same_command(a, Batch.of({1: 5, 3: 9}, [2, 7]))
    assert not same_command(a, Batch.of({1: 5, 3: 10}, [2]))
    assert not same_command(a, Wait())
    assert same_command(Wait(), Wait()) and not same_command(Wait(), Wait(until_s=3.0))


def test_a_rule_agrees_with_itself_everywhere_and_watching_changes_nothing():
    got = state_dependence(CFG, "slo_triage", seed=1, rules=["slo_triage", "hybrid"])
    assert got["decisions"] > 100
    assert got["agrees_with"]["slo_triage"] == 1.0
    assert got["differs_from_all"] == 0.0
    assert got["agrees_with"]["hybrid"] < 1.0
    assert_same_result(got["result"], lse.simulate(CFG, "slo_triage", seed=1))


class Alternate(Scheduler):
    """hybrid at even decisions, slo_triage at odd ones: always agrees with one of them."""

    name = "alternate_test"
    Config = NoParams

    def __init__(self, config, sim_config) -> None:
        super().__init__(config, sim_config)
        self.rules = [make_scheduler(sim_config, "hybrid"),
                      make_scheduler(sim_config, "slo_triage")]
        self.k = 0

    def schedule(self, view):
        self.k += 1
        return self.rules[self.k % 2].schedule(view)


class OneAtATime(Scheduler):
    """One 64-token chunk of the oldest request beside every decode: no rule does this."""

    name = "one_test"
    Config = NoParams

    def schedule(self, view):
        ids = view.waiting[:1]
        if ids.size == 0:
            return Batch(decode_ids=view.decoding) if view.decoding.size else Wait()
        return Batch(prefill_ids=ids, prefill_tokens=np.minimum(view.remaining_prompt(ids), 64),
                     decode_ids=view.decoding)


def _with(monkeypatch, name: str, cls: type) -> None:
    import agents.agreement as agreement

    monkeypatch.setattr(agreement, "make_scheduler",
                        lambda cfg, n: cls(NoParams(), cfg) if n == name
                        else make_scheduler(cfg, n))


def test_mixing_two_rules_differs_from_none_and_a_new_rule_from_both(monkeypatch):
    _with(monkeypatch, "alt", Alternate)
    got = state_dependence(CFG, "alt", seed=2, rules=["hybrid", "slo_triage"])
    assert got["differs_from_all"] == 0.0
    assert 0.3 < got["agrees_with"]["hybrid"] < 1.0
    _with(monkeypatch, "one", OneAtATime)
    got = state_dependence(CFG, "one", seed=2, rules=["hybrid", "slo_triage"])
    assert got["differs_from_all"] > 0.3
