"""Capacity search against the closed form of the M/M/1 queue, bracket invariants and errors.

configs/mm1.yaml serves one request per batch with a single output token, so TTFT = sojourn time
~ Exp(mu - lambda) with mu = 2.5/s. With the SLO ``ttft_ms = 1000 T`` (TBT never binding) the
attainment is ``A(lambda) = 1 - exp(-(mu - lambda) T)`` and the capacity for target ``p`` is
``lambda* = mu + ln(1 - p) / T``: 1.924/s for T = 4 s, p = 0.9.

Tolerance. The search decides "meets" from the mean attainment of R replications, whose error at
a boundary rate is within the reported t-CI half width ``h`` (95%). An attainment error ``h``
moves the crossing point by ``h / |dA/dlambda|`` with ``dA/dlambda = -T exp(-(mu - lambda*) T)
= -T (1 - p) = -0.4`` per (req/s) at lambda*; so lambda* must lie in
``[low - h_low / 0.4, high + h_high / 0.4]``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from llm_serving_env.analysis.capacity import CapacityError, CapacityResult, capacity
from llm_serving_env.cli import main
from llm_serving_env.config.files import load_config
from llm_serving_env.schema.fields import ConfigError

ROOT = Path(__file__).resolve().parents[1]
MU = 2.5       # service rate, requests per second
T_SLO = 4.0    # TTFT objective, seconds
TARGET = 0.9
LAMBDA_STAR = MU + math.log(1.0 - TARGET) / T_SLO  # 1.9244 req/s
SLOPE_AT_STAR = T_SLO * (1.0 - TARGET)  # |dA/dlambda| at lambda*, per (req/s)


def mm1_with_slo(num_requests: int, warmup: int, ttft_ms: float = 1000.0 * T_SLO):
    return load_config("configs/mm1.yaml").replace({
        "num_requests": num_requests,
        "warmup_requests": warmup,
        "slo": {"ttft_ms": ttft_ms, "tbt_ms": 1.0e9},
    })


def exact_attainment(rate: np.ndarray | float) -> np.ndarray | float:
    return 1.0 - np.exp(-(MU - np.asarray(rate)) * T_SLO)


@pytest.fixture(scope="module")
def mm1_capacity() -> CapacityResult:
    """~7 probes x 5 replications x 4,000 requests (3,600 measured): a few seconds."""
    return capacity(mm1_with_slo(4_000, 400), slo_attainment=TARGET, replications=5,
                    rel_tol=0.02, seed=0, progress=False)


def test_mm1_capacity_brackets_the_closed_form(mm1_capacity):
    res = mm1_capacity
    tol_low = res.low_attainment.half_width / SLOPE_AT_STAR
    tol_high = res.high_attainment.half_width / SLOPE_AT_STAR
    # the tolerance must be informative (a few % of lambda*), not a free pass
    assert max(tol_low, tol_high) < 0.1 * LAMBDA_STAR
    assert res.low_per_s - tol_low <= LAMBDA_STAR <= res.high_per_s + tol_high, (
        res, tol_low, tol_high)
    assert res.rate_per_s == pytest.approx(LAMBDA_STAR, rel=0.1)


def test_every_probe_matches_the_closed_form_attainment(mm1_capacity):
    probes = mm1_capacity.probes
    error = np.abs(probes["attainment"] - exact_attainment(probes["rate_per_s"]))
    # each half width is a 95% t-CI (4 d.f.); twice it makes a miss at any of the ~7 probes
    # very unlikely (two-sided p ~ 0.005 each)
    assert (error <= 2.0 * probes["half_width"] + 1e-3).all(), probes


def test_bracket_invariants(mm1_capacity):
    res = mm1_capacity
    probes = res.probes.set_index("rate_per_s")
    assert res.low_per_s < res.high_per_s
    assert (res.high_per_s - res.low_per_s) / res.low_per_s < 0.02
    assert res.rate_per_s == res.low_per_s
    assert bool(probes.loc[res.low_per_s, "meets"]) and not probes.loc[res.high_per_s, "meets"]
    assert res.low_attainment.mean >= TARGET > res.high_attainment.mean
    assert res.low_attainment.mean == probes.loc[res.low_per_s, "attainment"]
    assert list(res.probes.columns) == ["rate_per_s", "attainment", "half_width",
                                        "growth_per_s", "growth_half_width", "stable", "meets"]
    assert res.probes["stable"].all()  # every probed rate is below mu = 2.5 here
    # With common random numbers the M/M/1 sojourn times are pathwise nondecreasing in lambda
    # (arrival times scale as 1/lambda, service times are shared), so is the attainment curve.
    curve = res.probes.sort_values("rate_per_s")["attainment"].to_numpy()
    assert (np.diff(curve) <= 1e-12).all()
    text = str(res)
    assert "bracket" in text and f"{res.low_per_s:.4g}" in text


def test_given_bounds_that_are_wrong_are_moved():
    """Both given bounds fail (overloaded: lambda > mu): the search moves below them."""
    cfg = mm1_with_slo(300, 50)
    res = capacity(cfg, replications=2, low_rate_per_s=3.0, high_rate_per_s=4.0,
                   progress=False)
    assert res.low_per_s < res.high_per_s <= 3.0
    assert (res.high_per_s - res.low_per_s) / res.low_per_s < 0.02
    meets = res.probes.set_index("rate_per_s")["meets"]
    assert meets[res.low_per_s] and not meets[res.high_per_s]
    assert not meets[3.0] and not meets[4.0]


def test_overloaded_rates_fail_through_the_stability_check():
    """A loose SLO met by every request of a short run: only the backlog growth can say that
    rates above mu fail; the capacity must then stay below mu = 2.5/s."""
    cfg = mm1_with_slo(3_000, 300, ttft_ms=1.0e7)  # 10,000 s: never violated in these runs
    res = capacity(cfg, replications=2, rel_tol=0.05, progress=False)
    assert (res.probes["attainment"] == 1.0).all()
    assert not res.probes.set_index("rate_per_s").loc[res.high_per_s, "stable"]
    assert res.low_per_s < MU * 1.05
    assert res.high_per_s > MU * 0.9


def test_config_without_slo_is_a_config_error():
    cfg = load_config("configs/mm1.yaml")
    assert cfg.slo is None
    with pytest.raises(ConfigError, match="slo"):
        capacity(cfg, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"slo_attainment": 1.0}, "slo_attainment"),
        ({"replications": 1}, "replications"),
        ({"rel_tol": 0.0}, "rel_tol"),
        ({"low_rate_per_s": 2.0, "high_rate_per_s": 1.0}, "low_rate_per_s"),
        ({"low_rate_per_s": -1.0}, "low_rate_per_s"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        capacity(mm1_with_slo(100, 10), progress=False, **kwargs)


def test_unreachable_slo_is_a_clear_error():
    # TTFT <= 1 ms while a service time alone is Exp(mean 400 ms): attainment ~0.25% at any rate
    cfg = mm1_with_slo(200, 0, ttft_ms=1.0)
    with pytest.raises(CapacityError, match="no arrival rate meets"):
        capacity(cfg, replications=2, progress=False)


def test_probe_budget_is_enforced():
    with pytest.raises(CapacityError, match="probes"):
        capacity(mm1_with_slo(200, 20), replications=2, max_probes=3, progress=False)


def test_cli_capacity_prints_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "cap.json"
    code = main(["capacity", "--config", str(ROOT / "configs" / "mm1.yaml"),
                 "--set", "num_requests=500", "--set", "warmup_requests=50",
                 "--set", "slo.ttft_ms=4000", "--set", "slo.tbt_ms=1000000000",
                 "--replications", "2", "--target", "0.9", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "capacity of request_level" in text and "growth_per_s" in text
    data = json.loads(out.read_text())
    assert data["low_per_s"] < data["high_per_s"]
    assert data["rate_per_s"] == data["low_per_s"]
    assert len(data["probes"]) >= 3


def test_cli_capacity_without_slo_exits_2(capsys):
    code = main(["capacity", "--config", "mm1", "--set", "num_requests=200",
                 "--set", "warmup_requests=20"])
    assert code == 2
    assert "slo" in capsys.readouterr().err
