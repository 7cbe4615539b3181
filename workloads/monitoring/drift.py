"""Drift of what a model served against what it was trained on, per feature, and its performance when labels arrive.

The reference (`Reference.of`) is computed once, by training, from the training split of the point-in-time set
the model's lineage names, and stored in the model bundle (`monitoring/reference.json`): a drift run reads only
the request log's window. Per feature:

    numeric       PSI over the reference's decile bins, Kolmogorov-Smirnov p-value and Wasserstein distance
                  (in reference standard deviations) against a fixed reference sample, missing-rate change
    categorical   PSI over the reference's categories (unseen ones pooled), the p-value of a two-sample chi-squared
                  test (reference counts against the window's), missing-rate change

and the score distribution (PSI against the test split's predictions), plus ROC AUC over the window's feedback.
Vectorised numpy/scipy: one pass per column, no per-row Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import Field
from scipy import stats

from workloads.common.models import Strict
from workloads.common.specs import FeatureSpec

BINS = 10
SAMPLE = 5_000  # reference values kept per numeric feature, for the two-sample tests
EPSILON = 1e-4  # a bin's share floor: PSI of an empty bin is otherwise infinite
OTHER = "__other__"  # served categories the reference never saw
MIN_FEEDBACK = 20  # labels needed (of both classes) before ROC AUC is reported


class NumericReference(Strict):
    kind: Literal["numeric"] = "numeric"
    edges: list[float]  # interior cut points: BINS - 1 at most (fewer when quantiles coincide)
    shares: list[float]  # share of non-missing reference values per bin
    sample: list[float]  # up to SAMPLE values, for KS and Wasserstein
    mean: float
    std: float
    missing_rate: float


class CategoricalReference(Strict):
    kind: Literal["categorical"] = "categorical"
    shares: dict[str, float]  # share of non-missing reference values per category
    missing_rate: float


class Reference(Strict):
    """What a model's inputs and scores looked like in training: the fixed side of every drift comparison."""

    model: str
    version: str
    rows: int
    instants: dict[str, str]  # the feature-store instants it was computed from (the model's lineage)
    features: dict[str, Annotated[NumericReference | CategoricalReference, Field(discriminator="kind")]]
    prediction: NumericReference

    @staticmethod
    def of(
        frame: pd.DataFrame,
        specs: list[FeatureSpec],
        scores: np.ndarray,
        *,
        model: str,
        version: str,
        instants: dict[str, str],
        seed: int = 0,
    ) -> Reference:
        """From raw feature columns (as requests carry them) and the model's scores on held-out rows."""
        rng = np.random.default_rng(seed)
        features: dict[str, NumericReference | CategoricalReference] = {}
        for spec in specs:
            for column in spec.columns:
                values = frame[column.name]
                if column.type in ("int", "double"):
                    features[column.name] = _numeric_reference(floats(values), rng)
                else:
                    features[column.name] = _categorical_reference(values)
        return Reference(
            model=model,
            version=version,
            rows=len(frame),
            instants=instants,
            features=features,
            prediction=_numeric_reference(np.asarray(scores, float), rng),
        )


def floats(values: pd.Series) -> np.ndarray:
    """A numeric column (nullable Int64 included) as float64 with NaN for missing."""
    return pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()


def _numeric_reference(values: np.ndarray, rng: np.random.Generator) -> NumericReference:
    present = values[~np.isnan(values)]
    if not len(present):
        return NumericReference(edges=[], shares=[1.0], sample=[], mean=0.0, std=0.0, missing_rate=1.0)
    edges = np.unique(np.quantile(present, np.linspace(0, 1, BINS + 1)[1:-1]))
    shares = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1) / len(present)
    sample = present if len(present) <= SAMPLE else rng.choice(present, SAMPLE, replace=False)
    return NumericReference(
        edges=edges.tolist(),
        shares=shares.tolist(),
        sample=np.sort(sample).tolist(),
        mean=float(present.mean()),
        std=float(present.std()),
        missing_rate=float(1 - len(present) / len(values)),
    )


def _categorical_reference(values: pd.Series) -> CategoricalReference:
    present = values.dropna().astype(str)
    counts = present.value_counts()
    return CategoricalReference(
        shares={str(k): float(v / max(len(present), 1)) for k, v in counts.items()},
        missing_rate=float(1 - len(present) / max(len(values), 1)),
    )


# --- comparing a window with the reference ---------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str
    psi: float
    pvalue: float  # KS (numeric) or chi-squared (categorical)
    test: str
    wasserstein: float | None  # numeric only, in reference standard deviations
    missing_rate_change: float
    rows: int  # non-missing served values compared


@dataclass(frozen=True)
class DriftReport:
    model: str
    version: str
    rows: int  # prediction rows in the window
    features: list[FeatureDrift] = field(default_factory=list)
    prediction_psi: float | None = None
    roc_auc: float | None = None
    feedback_rows: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> records not compared

    @property
    def no_data(self) -> bool:
        return self.rows == 0

    @property
    def max_psi(self) -> float | None:
        return max((f.psi for f in self.features if not math.isnan(f.psi)), default=None)

    def drifted(self, threshold: float) -> list[str]:
        return [f.feature for f in self.features if f.psi >= threshold]  # a NaN (nothing served) compares False


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    expected, actual = np.maximum(expected, EPSILON), np.maximum(actual, EPSILON)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def numeric_drift(name: str, reference: NumericReference, values: np.ndarray) -> FeatureDrift:
    missing = np.isnan(values)
    present = values[~missing]
    counts = np.bincount(np.searchsorted(reference.edges, present, side="right"), minlength=len(reference.shares))
    shares = counts / max(len(present), 1)
    if len(present) and reference.sample:
        pvalue = float(stats.ks_2samp(present, reference.sample, method="asymp").pvalue)
        distance = stats.wasserstein_distance(present, reference.sample)
        wasserstein = float(distance / reference.std) if reference.std > 0 else float(distance)
    else:
        pvalue, wasserstein = math.nan, math.nan
    return FeatureDrift(
        feature=name,
        kind="numeric",
        psi=psi(np.asarray(reference.shares), shares) if len(present) else math.nan,
        pvalue=pvalue,
        test="ks",
        wasserstein=wasserstein,
        missing_rate_change=float(missing.mean() - reference.missing_rate) if len(values) else math.nan,
        rows=len(present),
    )


def contingency_pvalue(reference_counts: np.ndarray, counts: np.ndarray) -> float:
    """Two-sample chi-squared test of homogeneity: are the reference and the window drawn from one category mix?

    Both samples are finite, so neither is taken as the truth (a goodness-of-fit test against the reference's
    shares would call a handful of unseen values certain drift). Categories neither sample holds are dropped;
    with one category left there is nothing to test."""
    table = np.vstack([reference_counts, counts])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0
    return float(stats.chi2_contingency(table, correction=False).pvalue)


def categorical_drift(
    name: str, reference: CategoricalReference, values: pd.Series, reference_rows: int
) -> FeatureDrift:
    categories = [*reference.shares, OTHER]
    missing = values.isna().to_numpy()
    codes = pd.Categorical(values[~missing].astype(str), categories=categories[:-1]).codes
    counts = np.bincount(np.where(codes < 0, len(categories) - 1, codes), minlength=len(categories))
    present = int(counts.sum())
    expected = np.asarray([*reference.shares.values(), 0.0])
    if present:
        pvalue = contingency_pvalue(expected * reference_rows * (1 - reference.missing_rate), counts)
        drift = psi(expected, counts / present)
    else:
        pvalue, drift = math.nan, math.nan
    return FeatureDrift(
        feature=name,
        kind="categorical",
        psi=drift,
        pvalue=pvalue,
        test="chi2",
        wasserstein=None,
        missing_rate_change=float(missing.mean() - reference.missing_rate) if len(values) else math.nan,
        rows=present,
    )


def compare(
    reference: Reference,
    inputs: pd.DataFrame,
    scores: np.ndarray,
    *,
    feedback: tuple[np.ndarray, np.ndarray] | None = None,
    skipped: dict[str, int] | None = None,
) -> DriftReport:
    """Drift of a window of served rows (raw inputs and scores) against ``reference``; an empty window is no data."""
    skipped = dict(skipped or {})
    labels, feedback_scores = feedback if feedback is not None else (np.array([]), np.array([]))
    auc = _roc_auc(labels, feedback_scores)
    if not len(inputs):
        return DriftReport(
            reference.model, reference.version, 0, roc_auc=auc, feedback_rows=len(labels), skipped=skipped
        )
    features = []
    for name, ref in reference.features.items():
        if isinstance(ref, NumericReference):
            features.append(numeric_drift(name, ref, floats(inputs[name])))
        else:
            features.append(categorical_drift(name, ref, inputs[name], reference.rows))
    prediction = numeric_drift("prediction", reference.prediction, np.asarray(scores, float))
    return DriftReport(
        reference.model,
        reference.version,
        len(inputs),
        features,
        prediction.psi,
        auc,
        len(labels),
        skipped,
    )


def _roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Mann-Whitney U over ranks; None until MIN_FEEDBACK labels of both classes arrived."""
    labels = np.asarray(labels, float)
    positives = int((labels == 1).sum())
    negatives = int((labels == 0).sum())
    if positives + negatives < MIN_FEEDBACK or not positives or not negatives:
        return None
    ranks = stats.rankdata(np.asarray(scores, float)[np.isin(labels, (0, 1))])
    known = labels[np.isin(labels, (0, 1))]
    return float((ranks[known == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))
