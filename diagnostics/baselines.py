"""The no-sequence baselines beside every model of a sweep: genomic distance alone and interaction propensity
alone, with a flag for each run that does not beat the better of the two.

On TargetFinder-style data both are strong: distance alone is competitive within a cell type (BENGI,
Moore et al. 2020) and propensity alone even under proper splits (Mao, Kostka & Chikina). A run "beats the
baselines" only when the paired bootstrap interval over test pairs of (run - better baseline) on the chosen
metric lies above zero (``cbat.stats.paired_bootstrap``, the sweep's own interval method), and only for a run
that learnt (``cbat.metrics.learnt``, the guard every comparison checks): a run at chance is shown with its
numbers but compared with nothing. Against a propensity baseline with nothing to go on (every score tied, AUPR
= the positive share) even a random ranking's AUPR lies above it on a small test set, so without the guard a
run on labels independent of the sequences could "beat" it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from cbat.data import distance_scores, genomic_distance, propensity_scores
from cbat.stats import _score, paired_bootstrap
from diagnostics.io import Sweep, load_sweep

BASELINES = ("distance", "propensity")
COLUMNS = ["split", "cell_line", "pooled", "kind", "name", "run_id", "seed", "learnt", "aupr", "auroc", "n_test",
           "better_baseline", "diff", "ci_low", "ci_high", "beats_baselines"]
ALL = "all"


def baseline_scores(ds, split) -> dict[str, np.ndarray]:
    """Scores of each no-sequence baseline on ``split.test`` (trained on ``split.train``); ``distance``
    only where the data carry coordinates."""
    scores = {"propensity": propensity_scores(ds, split.train, split.test)}
    if genomic_distance(ds) is not None:
        scores["distance"] = distance_scores(ds, split.train, split.test)
    return {name: scores[name] for name in BASELINES if name in scores}


def _groups(cells: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Every test pair (named by its cell line when there is one, else ``"all"``), then each cell line when
    the test set holds several."""
    present = sorted(set(cells))
    if len(present) == 1:
        return [(present[0], np.ones(cells.size, dtype=bool))]
    return [(ALL, np.ones(cells.size, dtype=bool))] + [(cell, cells == cell) for cell in present]


def _row(split, cell, kind, name, labels, scores, run_id=None, seed=None) -> dict:
    return {"split": split, "cell_line": cell, "kind": kind, "name": name, "run_id": run_id, "seed": seed,
            "aupr": _score("aupr", labels, scores), "auroc": _score("auroc", labels, scores), "n_test": labels.size}


def baselines_table(sweep_dir, metric: str = "aupr", n_boot: int = 1000, level: float = 0.95,
                    seed: int = 0) -> pd.DataFrame:
    """Both baselines and every finished run of a sweep, per split and test cell line, in one tidy table.

    Parameters
    ----------
    sweep_dir : a sweep directory (or a loaded ``diagnostics.io.Sweep``); its data spec and split seed
        rebuild the exact test pairs the runs were scored on.
    metric : "aupr" or "auroc": which metric picks the better baseline and is compared.
    n_boot, level, seed : the paired bootstrap over test pairs.

    Returns
    -------
    DataFrame
        ``COLUMNS``: one row per (split, cell_line, baseline) with ``kind="baseline"`` and one per
        (split, cell_line, run) with ``kind="model"``, where ``better_baseline`` names the stronger baseline
        on that group, ``diff`` = run - better baseline, ``ci_low``/``ci_high`` its interval and
        ``beats_baselines`` whether the interval excludes 0 on the good side (missing where the group holds
        one class, and for a run whose ``learnt`` is False: its record's guard says it did not learn). ``pooled``
        rows cover every test pair (``cell_line`` is the held-out cell line, or ``"all"`` when the test set holds
        several, each of which then gets its own rows too).
    """
    from cbat.sweep import make_split, sweep_data

    if metric not in ("aupr", "auroc"):
        raise ValueError(f"baselines_table: metric {metric!r}; expected 'aupr' or 'auroc'")
    sweep = load_sweep(sweep_dir)
    spec = _spec(sweep)
    dataset = sweep_data(sweep.path)
    runs = sweep.ok()
    rows = []
    for split_name in dict.fromkeys(sweep.runs["split"]):
        split = make_split(dataset, split_name, spec.get("split_seed", 0))
        labels = dataset.labels[split.test]
        cells = dataset.meta["cell_line"].astype(str).to_numpy()[split.test]
        scores = baseline_scores(dataset, split)
        position = pd.Series(np.arange(split.test.size), index=split.test)
        for cell, mask in _groups(cells):
            base_rows = [_row(split_name, cell, "baseline", name, labels[mask], s[mask]) for name, s in scores.items()]
            for row in base_rows:
                row["pooled"] = bool(mask.all())
            rows += base_rows
            better = max(base_rows, key=lambda r: -np.inf if np.isnan(r[metric]) else r[metric])["name"]
            for run in runs[runs["split"] == split_name].itertuples():
                predictions = sweep.predictions(run.run_id)
                probs = np.full(split.test.size, np.nan)
                probs[position.loc[predictions["pair_index"].to_numpy()].to_numpy()] = predictions["prob"].to_numpy()
                scored = mask & ~np.isnan(probs)
                row = _row(split_name, cell, "model", run.variant, labels[scored], probs[scored], run.run_id,
                           int(run.seed))
                row.update(better_baseline=better, pooled=bool(mask.all()), learnt=bool(run.learnt))
                if np.unique(labels[scored]).size == 2:  # one class: no ranking metric, nothing to compare
                    interval = paired_bootstrap(labels[scored], scores[better][scored], probs[scored], metric,
                                                n_boot, level, seed)
                    row.update(diff=interval["mean_diff"], ci_low=interval["ci_low"], ci_high=interval["ci_high"],
                               beats_baselines=bool(interval["ci_low"] > 0) if run.learnt else None)
                rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS).astype({"seed": "Int64", "learnt": "boolean"})


def run_flags(table: pd.DataFrame) -> pd.DataFrame:
    """One row per run: ``run_id, variant, split, learnt, beats_baselines, better_baseline, diff, ci_low, ci_high``
    on all its test pairs; ``beats_baselines`` False flags a run that does not beat the better no-sequence baseline,
    missing one that did not learn (nothing compared)."""
    models = table[(table["kind"] == "model") & table["pooled"]]
    return models.rename(columns={"name": "variant"})[["run_id", "variant", "split", "learnt", "beats_baselines",
                                                       "better_baseline", "diff", "ci_low", "ci_high"]] \
        .reset_index(drop=True)


def _spec(sweep: Sweep) -> dict:
    spec = sweep.spec.get("spec", sweep.spec)
    if "data" not in spec:
        raise ValueError(f"{sweep.path}: sweep.json names no data spec; the baselines need the sweep's data")
    return spec


def baselines_note(sweep_dir, table: Optional[pd.DataFrame] = None) -> str:
    """One paragraph for a report: what the baselines mean on this sweep's data, and how many runs beat them."""
    sweep = load_sweep(sweep_dir)
    data = _spec(sweep)["data"]
    if "task" in data:
        text = ("Embedded benchmark: genomic distance is planted to be uninformative (every enhancer sits at a "
                "log-uniform 10 kb - 1 Mb from its promoter whatever its label, `cbat.data.loci`), so the distance "
                "baseline is at chance by construction; the propensity baseline shows how much promoter sharing "
                "alone would give.")
    else:
        text = ("Your data: the distance baseline is a logistic regression on log genomic distance and the "
                "propensity baseline scores each pair by its elements' training positive rate; both are trained "
                "on the same split as the models. A model means something only where it beats the better one.")
    if table is not None and not table.empty:
        if "distance" not in set(table.loc[table["kind"] == "baseline", "name"]):
            text += (" Your files carry no coordinates (enhancer_start/end and promoter_start/end, or "
                     "enhancer_distance_to_promoter), so the distance baseline is not shown; load a coordinate "
                     "file with its genome to get it.")
        flags = run_flags(table)
        beats = flags["beats_baselines"].eq(True)  # missing (one-class test set, not learnt) counts as not beating
        text += (f" {int(beats.sum())} of {len(beats)} runs beat the better baseline (95% paired bootstrap interval "
                 "over test pairs above 0).")
        unlearnt = int(flags["learnt"].eq(False).fillna(False).sum())
        if unlearnt:
            text += f" {unlearnt} did not learn (the guard) and are compared with nothing."
    return text


def show(table: pd.DataFrame, sweep_dir: str | Path | Sweep) -> None:
    """Display the note and the table in a notebook, runs that do not beat the baselines marked."""
    from IPython.display import Markdown, display

    display(Markdown(baselines_note(sweep_dir, table)))
    verdicts = table["beats_baselines"].map({True: "beats baselines", False: "DOES NOT BEAT BASELINES"})
    unlearnt = table["learnt"].eq(False).fillna(False).to_numpy(dtype=bool)  # baseline rows hold no guard (NA)
    missing = np.where(unlearnt, "not learnt: no comparison", "one class: no comparison")
    flag = np.where(table["kind"] != "model", "", verdicts.fillna(pd.Series(missing, index=table.index)))
    display(table.drop(columns=["run_id", "pooled", "beats_baselines"]).assign(flag=flag).round(3))
