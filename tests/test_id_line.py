"""The engine's waiting lines: views that never change, exact slice recognition, and a stale
waiting list from an earlier decision validated in full."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_config

from llm_serving_env.sim.batch import Batch, SchedulingError
from llm_serving_env.sim.engine import Simulator
from llm_serving_env.sim.id_line import IdLine
from llm_serving_env.workload.generate import Workload


def test_views_handed_out_never_change():
    line = IdLine(np.zeros(1000, dtype=np.int64))
    line.extend(np.arange(10))
    first = line.ids()
    assert not first.flags.writeable
    line.drop_front(3)
    line.extend(np.arange(10, 200))  # forces a regrow
    line.append(200)
    second = line.ids()
    line.reset(np.array([7, 5, 3]))
    line.extend(np.arange(300, 400))
    assert first.tolist() == list(range(10))
    assert second.tolist() == list(range(3, 201))
    assert line.ids().tolist() == [7, 5, 3, *range(300, 400)]


def test_holds_slice_only_for_forward_slices_of_the_current_ids():
    line = IdLine(np.zeros(100, dtype=np.int64))
    line.extend(np.arange(20))
    old = line.ids()
    line.drop_front(5)
    now = line.ids()
    assert line.holds_slice(now[:4]) and line.holds_slice(now[2:9:3]) and line.holds_slice(now)
    assert not line.holds_slice(now[::-1])  # reversed
    assert not line.holds_slice(old[:6])  # reaches ids that left the line
    assert line.holds_slice(old[5:8])  # an old view's ids that are still waiting, in order
    assert not line.holds_slice(np.array(now[:3]))  # a copy: validated by the engine instead
    line.reset(now)
    assert not line.holds_slice(now[:3])  # a view of the previous buffer


def test_a_stale_waiting_list_is_validated_in_full():
    cfg = make_config(num_requests=3, **{"scheduler.token_budget": 20})
    wl = Workload(arrival_s=np.zeros(3), prompt_tokens=np.array([10, 10, 10], dtype=np.int64),
                  output_tokens=np.array([3, 3, 3], dtype=np.int64))
    sim = Simulator(cfg, seed=0, workload=wl)
    sim.reset()
    view = sim.next_decision()
    stale = view.waiting
    sim.execute(Batch(prefill_ids=stale[:1], prefill_tokens=[10]))  # request 0's whole prompt
    sim.next_decision()
    # request 0 has left the waiting list: a slice of the old list naming it is refused
    with pytest.raises(SchedulingError) as err:
        sim.execute(Batch(prefill_ids=stale[:2], prefill_tokens=[1, 1]))
    assert err.value.rule in ("not_waiting", "chunk_size")
    # a slice of the old list covering only waiting requests is accepted
    sim.execute(Batch(prefill_ids=stale[1:3], prefill_tokens=[10, 10]))
