"""The study (llm_serving_env/report.py), its command, and main_report.ipynb.

- The notebook executes end to end (nbclient, the ``python3`` kernel of ipykernel, with
  ``LLM_SERVING_QUICK=1``) without any cell raising.
- Its main text (markdown cells and generated markdown before "Technical appendices") has
  2000-3000 words; the executive summary is generated from the data: its literal text holds no
  numbers (only code does) and its rendered output does.
- Every figure function labels both axes of every panel and has a legend wherever more than one
  labelled series is drawn.
- ``run_all`` runs every analysis at tiny sizes and writes long-format CSVs that the figures and
  ``key_findings`` accept; ``llm-serving report`` runs and validates ``--only``.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from llm_serving_env.analysis.stability import work_conserving_capacity  # noqa: E402
from llm_serving_env.cli import main  # noqa: E402
from llm_serving_env.config.files import load_config
from llm_serving_env.resources import CONFIGS_DIR
from llm_serving_env.study import report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "data" / "report"
NOTEBOOK = ROOT / "main_report.ipynb"
APPENDIX = re.compile(r"^#+\s*Technical appendices", re.MULTILINE)
#: Tokens with digits allowed in the executive summary's literal text: names, not results.
NAMES_WITH_DIGITS = ("Llama-3-70B", "A100", "P95")

TINY = dataclasses.replace(
    report.study_sizes(True), mode="tiny", requests=300, warmup=30, reps=2, comparison_reps=2,
    capacity_requests=300, capacity_warmup=30, capacity_reps=2, capacity_rel_tol=0.5,
    mm1_requests=600, mm1_warmup=60, mm1_reps=2, disagg_requests=300, disagg_warmup=30,
    long_requests=60, long_warmup=6, long_reps=2, trace_requests=300, trace_reps=2,
    welch_reps=2, demo_reps=2, demo_bins=5)


# --------------------------------------------------------------------------------------------
# The notebook
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def executed():
    """main_report.ipynb executed in quick mode (module-scoped: run once)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")  # provides the native "python3" kernel
    from jupyter_client.kernelspec import KernelSpecManager

    assert "python3" in KernelSpecManager().find_kernel_specs(), \
        "no python3 kernel spec (install ipykernel in this environment)"
    nb = nbformat.read(NOTEBOOK, as_version=4)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLM_SERVING_QUICK", "1")  # the kernel inherits the environment
        mp.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
        client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=600,
                                         resources={"metadata": {"path": str(ROOT)}})
        client.execute()  # raises CellExecutionError if any cell raises
    return nb


def _words(text: str) -> int:
    text = re.sub(r"\$[^$]*\$", " x ", text)  # a formula counts as one word
    return len(re.findall(r"[A-Za-z0-9][A-Za-z0-9'’.,%/+\-×±]*", text))


def _main_text(nb) -> list[str]:
    """Markdown cells and generated markdown outputs before the appendix heading."""
    texts = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            if APPENDIX.search(cell.source):
                head = APPENDIX.split(cell.source)[0]
                texts.append(head)
                break
            texts.append(cell.source)
        else:
            for out in cell.get("outputs", []):
                md = out.get("data", {}).get("text/markdown")
                if md:
                    texts.append(md)
    return texts


def test_notebook_executes_without_errors(executed):
    errors = [o for c in executed.cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    images = sum("image/png" in o.get("data", {}) for c in executed.cells
                 if c.cell_type == "code" for o in c.get("outputs", []))
    assert images >= 15, images


def test_main_text_has_2000_to_3000_words(executed):
    assert any(APPENDIX.search(c.source) for c in executed.cells if c.cell_type == "markdown")
    count = sum(_words(t) for t in _main_text(executed))
    assert 2000 <= count <= 3000, count


def _literal_text(source: str) -> list[str]:
    """The literal (non-code) parts of every string in ``source``: plain string constants and
    the constant parts of f-strings, excluding format specs and strings inside ``{...}``."""
    tree = ast.parse(source)
    inside_code: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FormattedValue):
            for sub in ast.walk(node):
                inside_code.add(id(sub))
    parts = []
    for node in ast.walk(tree):
        if id(node) in inside_code:
            continue
        if isinstance(node, ast.JoinedStr):
            parts += [v.value for v in node.values
                      if isinstance(v, ast.Constant) and isinstance(v.value, str)]
            for v in node.values:
                inside_code.add(id(v))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in inside_code):
            parts.append(node.value)
    return parts


def test_executive_summary_is_generated_from_the_data(executed):
    cells = [c for c in executed.cells if "executive-summary" in c.metadata.get("tags", [])]
    assert len(cells) == 1 and cells[0].cell_type == "code"
    cell = cells[0]
    literal = " ".join(_literal_text(cell.source))
    for name in NAMES_WITH_DIGITS:
        literal = literal.replace(name, "")
    assert len(literal.split()) > 200  # the prose is in the cell ...
    assert not re.search(r"\d", literal), re.findall(r"\S*\d\S*", literal)  # ... no numbers
    rendered = [o["data"]["text/markdown"] for o in cell.outputs
                if "text/markdown" in o.get("data", {})]
    assert len(rendered) == 1
    assert len(re.findall(r"\d+(?:\.\d+)?", rendered[0])) > 40  # numbers come from the data
    # the summary comes right after its heading, before the modeling section
    index = executed.cells.index(cell)
    assert "Executive summary" in executed.cells[index - 1].source


def test_literal_text_check_catches_typed_numbers():
    assert _literal_text('md(f"a {x:.2f} b {g(3)} c")') == ["a ", " b ", " c"]
    assert re.search(r"\d", " ".join(_literal_text('md(f"rate 6.3 {x}")')))


# --------------------------------------------------------------------------------------------
# run_all at tiny sizes, figures, key findings
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Every analysis at tiny sizes, in a temporary directory (about half a minute)."""
    out = tmp_path_factory.mktemp("report")
    tables = report.run_all(quick=True, out_dir=out, workers=2, log=None, sizes=TINY)
    return out, tables


def test_run_all_writes_every_csv_in_long_format(tiny):
    out, tables = tiny
    for name in report.CSV_NAMES:
        assert (out / f"{name}.csv").exists(), name
    for name in ("demo_summary", "comparison", "chunk_size", "batching", "load_sweep",
                 "workload", "scaling", "disaggregation", "kv_memory", "kv_memory_long",
                 "sensitivity_service", "sensitivity_noise", "traces", "validation"):
        df = pd.read_csv(out / f"{name}.csv")
        assert {"metric", "mean", "half_width", "n"} <= set(df.columns), name
        assert len(df) > 0 and (df["n"] >= 1).all(), name
    info = tables["run_info"]
    assert list(info["analysis"]) == list(report.ANALYSES)
    assert (info["mode"] == "tiny").all() and (info["wall_s"] >= 0).all()


def test_run_all_only_keeps_other_rows_of_run_info(tiny, tmp_path):
    out, _ = tiny
    for f in out.glob("*.csv"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    report.run_all(out_dir=tmp_path, workers=1, only=["chunk_size"], log=None, sizes=TINY)
    info = pd.read_csv(tmp_path / "run_info.csv")
    assert list(info["analysis"]) == list(report.ANALYSES)
    with pytest.raises(ValueError, match="unknown analyses"):
        report.run_all(out_dir=tmp_path, only=["nope"], log=None, sizes=TINY)


def _check_axes(fig, name: str) -> None:
    assert fig.axes, name
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        where = f"{name}: panel {ax.get_title()!r}"
        assert ax.get_xlabel().strip(), f"{where} has no x label"
        assert ax.get_ylabel().strip(), f"{where} has no y label"
        handles, labels = ax.get_legend_handles_labels()
        named = [lb for lb in labels if lb and not lb.startswith("_")]
        if len(named) > 1:
            assert ax.get_legend() is not None or fig.legends, f"{where} has no legend"


@pytest.mark.parametrize("source", ["tiny", "committed"])
def test_every_figure_labels_its_axes(source, tiny):
    if source == "committed":
        if not all((COMMITTED / f"{n}.csv").exists() for n in report.CSV_NAMES):
            pytest.skip("no committed data/report CSVs")
        data = report.load(COMMITTED)
    else:
        data = report.load(tiny[0])
    drawn = 0
    for name, draw in report.FIGURES.items():
        fig = draw(data)
        if fig is None:
            assert name == "learned"
            continue
        _check_axes(fig, name)
        plt.close(fig)
        drawn += 1
    assert drawn >= len(report.FIGURES) - 1


def test_timeline_figures_label_their_axes():
    figs = report.fig_timelines(report.timeline_runs(num_requests=40))
    assert len(figs) == 2
    for fig in figs:
        _check_axes(fig, "timeline")
        plt.close(fig)


def test_key_findings_from_tiny_and_committed_data(tiny):
    f = report.key_findings(report.load(tiny[0]))
    assert f["mode"] == "tiny" and f["requests"] == TINY.requests
    assert f["val_cases"] == len(pd.read_csv(tiny[0] / "validation.csv"))
    assert f["budget_rule"] == pytest.approx(64 + (200 - 45.5) / 0.30)
    if all((COMMITTED / f"{n}.csv").exists() for n in report.CSV_NAMES):
        full = report.key_findings(report.load(COMMITTED))
        assert full["val_covered"] == full["val_cases"]  # every closed form inside its CI
        assert full["cap.slo_aware"] > full["cap.hybrid"] > full["cap.request_level"]


def test_learned_table_is_optional(tmp_path, tiny):
    assert report.learned(tmp_path) is None
    data = report.load(tiny[0])
    assert "learned" not in data or report.fig_learned(data) is not None
    f = report.key_findings({k: v for k, v in data.items() if k != "learned"})
    assert "not evaluated" in f["learned_text"]


# --------------------------------------------------------------------------------------------
# Small units and the command
# --------------------------------------------------------------------------------------------


def test_token_capacity_matches_li_et_al_bound():
    cfg = load_config(CONFIGS_DIR / "default.yaml")
    assert report.token_capacity(cfg, 512) == pytest.approx(9.047, abs=0.01)
    assert report.token_capacity(cfg, cfg.gpus.max_batch_tokens) == pytest.approx(
        work_conserving_capacity(cfg))
    assert report.token_capacity(cfg.replace({"gpus.count": 4}), 512) == pytest.approx(
        4 * report.token_capacity(cfg, 512))


def test_quick_mode_follows_flag_and_environment(monkeypatch):
    monkeypatch.delenv("LLM_SERVING_QUICK", raising=False)
    assert report.quick_mode(full=False) and not report.quick_mode(full=True)
    monkeypatch.setenv("LLM_SERVING_QUICK", "1")
    assert report.quick_mode(full=True)
    full, quick = report.study_sizes(False), report.study_sizes(True)
    assert (full.requests, full.warmup) == (20000, 2000)
    assert quick.requests < full.requests and quick.mode == "quick"


def test_scheduler_rules_come_from_the_baselines_docstrings():
    rules = report.scheduler_rules()
    assert {"request_level", "prefill_first", "hybrid", "slo_aware"} <= set(rules)
    assert all(rule.startswith("Rule") and "\n    " in rule for rule in rules.values())


def test_report_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LLM_SERVING_QUICK", "1")
    assert main(["report", "--only", "nope", "--out-dir", str(tmp_path)]) == 2
    assert "unknown analysis" in capsys.readouterr().err
    assert main(["report", "--full", "--only", "batching", "--workers", "2",
                 "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "LLM_SERVING_QUICK is set" in out and "batching" in out
    info = pd.read_csv(tmp_path / "run_info.csv")
    assert list(info["analysis"]) == ["batching"] and (info["mode"] == "quick").all()
    assert (tmp_path / "batching.csv").exists()
    assert os.environ["LLM_SERVING_QUICK"] == "1"
