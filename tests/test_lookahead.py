"""agents.lookahead: the clairvoyant teacher picks, among its candidates, the first whose
rollout window scores best (the score recomputed here from its definition), plans only on an
attached simulator, and is reachable from ``llm-serving train --bc-expert lookahead:RULE``."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import llm_serving_env as lse
from agents.lookahead import LookaheadExpert
from llm_serving_env.sim.engine import Simulator


def tight(n: int = 400) -> lse.SimConfig:
    return lse.load_config("configs/benchmarks/tight_ttft.yaml").replace(
        {"num_requests": n, "warmup_requests": 40})


def window_score(sim: Simulator, command, rule, now: float, horizon: float) -> int:
    """+1 per request arrived by the window's end, without a first token before now, whose
    first token meets its TTFT; -1 per such request whose deadline passes unmet in the
    window; the window run with ``command`` then ``rule``."""
    s = copy.deepcopy(sim)
    s.execute(command)
    end = now + horizon
    while (v := s.next_decision()) is not None and v.now_s < end:
        s.execute(rule.schedule(v))
    score = 0
    for i in range(s.n):
        a, f = s.arrival_s[i], s.first_token_s[i]
        deadline = a + s._ttft_objective_s[i]
        if a > end or f < now:
            continue
        if f <= deadline:
            score += 1
        elif deadline <= end:
            score -= 1
    return score


def test_the_teacher_picks_the_first_best_scoring_candidate():
    cfg = tight()
    sim = Simulator(cfg, seed=3)
    sim.reset()
    teacher = LookaheadExpert(cfg)
    teacher.attach(sim)
    teacher.reset(sim.policy_rng)
    rule = lse.make_scheduler(cfg, "slo_triage")
    checked = changed = 0
    while (view := sim.next_decision()) is not None:
        before = teacher.considered
        command = teacher.schedule(view)
        if teacher.considered > before and checked < 40:
            options = []
            for c in teacher.candidates:
                o = c.schedule(view)
                if not any(isinstance(o, lse.Batch) and isinstance(p, lse.Batch)
                           and np.array_equal(o.prefill_ids, p.prefill_ids)
                           and np.array_equal(o.prefill_tokens, p.prefill_tokens)
                           and np.array_equal(o.decode_ids, p.decode_ids) for p in options):
                    options.append(o)
            scores = [window_score(sim, o, rule, view.now_s, teacher.horizon_s)
                      for o in options]
            best = options[int(np.argmax(scores))]
            assert np.array_equal(command.prefill_ids, best.prefill_ids)
            assert np.array_equal(command.prefill_tokens, best.prefill_tokens)
            assert np.array_equal(command.decode_ids, best.decode_ids)
            checked += 1
            changed += scores[0] < max(scores)
        sim.execute(command)
    assert checked == 40 and changed > 0  # some windows do favour another candidate
    assert teacher.horizon_s == pytest.approx(3 * 0.7)


def test_the_teacher_needs_its_simulator():
    with pytest.raises(RuntimeError, match="attach"):
        lse.simulate(tight(), LookaheadExpert(tight()), seed=3)


def test_train_accepts_a_lookahead_teacher_and_names_bad_ones(capsys):
    from llm_serving_env.cli import main

    base = ["train", "--config", "configs/benchmarks/tight_ttft.yaml", "--algo", "maskable_ppo",
            "--action-space", "compose", "--timesteps", "0", "--out", "x.zip"]
    assert main([*base, "--bc-expert", "lookahead:no_such_rule"]) == 2
    assert "no_such_rule" in capsys.readouterr().err
    assert main([*base, "--bc-expert", "lookahead:all"]) == 2
    assert "lookahead:RULE" in capsys.readouterr().err


def test_headroom_script_pairs_the_teacher_with_its_rule(tmp_path, monkeypatch, capsys):
    import importlib.util
    import sys
    from pathlib import Path

    import pandas as pd

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("lookahead_headroom",
                                                  root / "scripts" / "lookahead_headroom.py")
    script = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = script
    spec.loader.exec_module(script)
    out = tmp_path / "h.csv"
    script.main(["tight_ttft", "--seeds", "2", "--requests", "150", "--out", str(out)])
    frame = pd.read_csv(out)
    cfg = tight(150).replace({"warmup_requests": 15})
    for row in frame.itertuples():
        rule = lse.simulate(cfg, "slo_triage", seed=row.seed).summary()
        assert row.rule_slo_attainment == rule["slo_attainment"]
        assert 0 <= row.decisions_changed <= row.decisions_compared
    assert "teacher / slo_triage goodput" in capsys.readouterr().out
