"""Expected vs found: on the embedded benchmark the cause of every positive is planted, so the verdicts can be
scored. Each ``Expectation`` names a declared hypothesis, the planted cause it is judged on and the verdict the
planted cause should produce; ``expected_vs_found`` judges them and says which were recovered.

On data without planted causes (user data) there is no truth: the table is empty and the report says so.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence

import pandas as pd

from diagnostics.io import Sweep, load_sweep
from diagnostics.verdicts import HYPOTHESES, NOT_LEARNT, SUPPORTED, Verdict, judge, planted_causes

NO_LOSS = "no loss claimed"  # a control: any verdict but "supported" (and a learnt model) recovers it
COLUMNS = ["check", "hypothesis", "cause", "expected", "found", "recovered", "tested", "metric", "effect", "ci_low",
           "ci_high", "p_adjusted", "evidence", "why"]


@dataclass(frozen=True)
class Expectation:
    """What a planted cause should make a hypothesis' verdict read."""

    check: str
    hypothesis: str
    cause: str
    expected: str
    why: str


EXPECTATIONS = (
    Expectation("H1", "H1", "long_range", SUPPORTED,
                "a 16-token window cannot relate the enhancer and promoter sites, 20-28 tokens apart"),
    Expectation("H2", "H2", "diffuse", SUPPORTED,
                "forced sparsity keeps few keys per query, so six weak cluster sites look like the two-site pair"),
    Expectation("V1a", "V1a", "diffuse", SUPPORTED,
                "hard top-k passes no gradient to unselected keys and loses the diffuse ranking"),
    Expectation("sparse-strong control", "H2", "sparse_strong", NO_LOSS,
                "one strong aligned pair decides: a sparse normaliser keeps it and should not trail"),
)


def expected_vs_found(sweep: str | Sweep, verdicts: Optional[Sequence[Verdict]] = None,
                      expectations: Sequence[Expectation] = EXPECTATIONS, **settings) -> pd.DataFrame:
    """One row per expectation whose cause is planted in the sweep's data: expected, found, recovered, numbers;
    ``tested`` is False where the sweep cannot judge the hypothesis at all (it lacks the variants it needs).

    Parameters
    ----------
    sweep : a sweep folder or ``Sweep``.
    verdicts : the assessment's verdicts (``diagnostics.assess(...).verdicts``); an expectation judged on the
        hypothesis' own cause reuses its verdict, so this page and the verdict table agree. Others (controls on
        another cause) are judged here, as a family of their own for the multiplicity adjustment.
    settings : keyword arguments of ``diagnostics.assess`` (``min_seeds``, ``n_boot`` ...).

    Returns
    -------
    DataFrame
        Columns ``COLUMNS``; empty when the data carry no planted causes.
    """
    sweep = load_sweep(sweep)
    planted = planted_causes(sweep)
    chosen = [e for e in expectations if e.cause in planted]
    by_id = {v.id: v for v in verdicts or ()}
    reused = {e.check: by_id[e.hypothesis] for e in chosen
              if e.hypothesis in by_id and by_id[e.hypothesis].cause == e.cause}
    rest = [e for e in chosen if e.check not in reused]
    judged = judge(sweep, [replace(HYPOTHESES[e.hypothesis], cause=e.cause) for e in rest], **settings) if rest else []
    found = {**reused, **{e.check: v for e, v in zip(rest, judged)}}
    rows = []
    for e in chosen:
        v = found[e.check]
        eff = v.effect
        rows.append([e.check, e.hypothesis, e.cause, e.expected, v.verdict, _recovered(e.expected, v),
                     v.tested, eff.metric if eff else "",  # untested: a check it holds is not missed
                     eff.mean_diff if eff else float("nan"),
                     eff.ci_low if eff else float("nan"), eff.ci_high if eff else float("nan"), v.p_adjusted,
                     v.evidence, e.why])
    return pd.DataFrame(rows, columns=COLUMNS)


def _recovered(expected: str, found: Verdict) -> bool:
    if expected == NO_LOSS:  # judged, from learnt models, without a loss
        return found.effect is not None and not found.reason and found.verdict not in (SUPPORTED, NOT_LEARNT)
    return found.verdict == expected


def recovered_count(table: pd.DataFrame) -> tuple[int, int]:
    """(recovered, tested) planted causes, for the report's index; untested checks count in neither."""
    return int(table["recovered"].sum()), int(table["tested"].sum()) if len(table) else 0
