"""Churn risk: which clients will cancel within the horizon, scored at the as-of date.

Intuition
---------
A client's future is unknown at the as-of date, so the model learns from the
past the way it will be used: **snapshots**. At each earlier date T (every
`step_days`), the clients of that day get features from touchpoints up to T only
(`sql/analysis/churn_features.sql`, T bound as a parameter) and a label: did they
cancel in (T, T + horizon]? Only snapshots whose horizon is fully observed are
labelled.

The **backtest** is rolling-origin: for each of the latest `n_test_snapshots`
labelled dates, a model is trained on snapshots whose labels were already known
by then (T_train + horizon <= T_test), never on the future, and scored on that
date. Pooled, these give ROC AUC, PR AUC and Brier score, next to two baselines
trained the same way: recency only (days since the last touchpoint) and the base
rate. The final model is trained on every labelled snapshot and scores the
clients at the as-of date.

With too little history to train and test honestly (see `MIN_*`), nothing is
fitted: the clients are listed with the signals seen and no probability or band
(a constant would read as a score), and the run is flagged `fallback`.

Non-contractual businesses (`churn_kind: non_contractual`, purchase logs) also get
BG/NBD (purchase_model.py), backtested on the same held-back periods (or the classic
split when no snapshot can be labelled); the model with the lower Brier score on the
rows both predicted scores the clients. Bands are on the odds scale (`risk_band`),
reachable at any base rate; a ranking is called reliable only with a backtest ROC AUC
of at least RELIABLE_ROC_AUC and a gain over recency whose bootstrap interval is
above zero.
"""

from __future__ import annotations

import datetime as dt
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from journey_mining.sql_models import read_sql
from journey_mining.warehouse import store_frame, transaction

__all__ = [
    "CATEGORICAL",
    "C_GRID",
    "RELIABLE_ROC_AUC",
    "FACTOR_TEXT",
    "ONLY_PURCHASES_FACTOR_TEXT",
    "PURCHASE_FACTOR_TEXT",
    "MAX_TRAIN_ROWS",
    "NUMERIC",
    "RISK_DIRECTION",
    "Backtest",
    "ChurnModel",
    "ChurnRun",
    "auc_gain_interval",
    "reliability",
    "backtest",
    "choose_C",
    "features_at",
    "history_snapshots",
    "ranking_verdict",
    "risk_band",
    "score_churn",
    "snapshot_dates",
    "store_churn",
]

NUMERIC = [
    "tenure_days", "days_since_deal_won", "deals_won", "deals_lost", "advocacy_signals",
    "days_since_engagement_end", "days_since_last_touch", "touches_90d", "touches_prev_90d",
    "touch_trend", "web_90d", "email_90d", "crm_90d", "support_tickets_60d",
    "support_tickets_180d", "low_nps_180d", "last_nps", "email_negative_180d",
    "contacts_engaged_180d", "roles_engaged", "employees", "in_open_engagement",
    "tickets_per_year", "mean_nps", "web_visits_per_month", "email_interactions_per_month",
    "project_weeks", "tickets_per_project_year", "web_visits_per_project_year", "weighted_nps",
]
CATEGORICAL = ["industry"]
MIN_TRAIN_ROWS, MIN_TRAIN_POSITIVES, MIN_TEST_POSITIVES = 40, 8, 3
# A fit sees at most this many snapshot rows (a uniform, seeded sample above it): a
# logistic regression on some 30 features has learnt what it can long before (at 10 M
# events, 298,194 labelled rows: backtest ROC AUC 0.7560 with 100,000 rows per fit,
# 0.7560 with 50,000, 0.7563 with 30,000; PR AUC 0.3806 / 0.3805 / 0.3801), and each
# fit's time grows with its rows.
MAX_TRAIN_ROWS = 50_000


def _training_rows(frame: pd.DataFrame, random_state: int) -> pd.DataFrame:
    if len(frame) <= MAX_TRAIN_ROWS:
        return frame
    return frame.sample(MAX_TRAIN_ROWS, random_state=random_state)

# How a marketer reads a feature that pushes risk up: (singular, plural) per feature.
FACTOR_TEXT = {
    "support_tickets_60d": ("{v} support ticket in 60 days", "{v} support tickets in 60 days"),
    "support_tickets_180d": ("{v} support ticket in 180 days",
                             "{v} support tickets in 180 days"),
    "low_nps_180d": ("{v} NPS reply of 6 or less in 180 days",
                     "{v} NPS replies of 6 or less in 180 days"),
    "last_nps": ("last NPS {v}",) * 2,
    "days_since_last_touch": ("no touchpoint for {v} day", "no touchpoint for {v} days"),
    "touches_90d": ("{v} touchpoint in the last 90 days", "{v} touchpoints in the last 90 days"),
    "touches_prev_90d": ("{v} touchpoint 90-180 days ago", "{v} touchpoints 90-180 days ago"),
    "touch_trend": ("touchpoints {v:+d} vs the 90 days before",) * 2,
    "web_90d": ("{v} website visit in 90 days", "{v} website visits in 90 days"),
    "email_90d": ("{v} email interaction in 90 days", "{v} email interactions in 90 days"),
    "crm_90d": ("{v} sales/service contact in 90 days", "{v} sales/service contacts in 90 days"),
    "days_since_engagement_end": ("{v} day since the last project ended",
                                  "{v} days since the last project ended"),
    "email_negative_180d": ("{v} unsubscribe/bounce/complaint in 180 days",
                            "{v} unsubscribes/bounces/complaints in 180 days"),
    "contacts_engaged_180d": ("{v} contact engaged in 180 days",
                              "{v} contacts engaged in 180 days"),
    "roles_engaged": ("{v} buying-committee role engaged", "{v} buying-committee roles engaged"),
    "in_open_engagement": ("no open project", "in an open project"),
    "tenure_days": ("client for {v} day", "client for {v} days"),
    "days_since_deal_won": ("{v} day since the last deal was won",
                            "{v} days since the last deal was won"),
    "deals_won": ("{v} deal won", "{v} deals won"),
    "deals_lost": ("{v} lost deal", "{v} lost deals"),
    "advocacy_signals": ("no referral or case study", "{v} referrals or case studies"),
    "tickets_per_year": ("{v} support ticket a year as a client",
                         "{v} support tickets a year as a client"),
    "mean_nps": ("average NPS {v}",) * 2,
    "web_visits_per_month": ("{v} website visit a month as a client",
                             "{v} website visits a month as a client"),
    "email_interactions_per_month": ("{v} email interaction a month as a client",
                                     "{v} email interactions a month as a client"),
    "project_weeks": ("{v} week in projects", "{v} weeks in projects"),
    "tickets_per_project_year": ("{v} support ticket a year while in a project",
                                 "{v} support tickets a year while in a project"),
    "web_visits_per_project_year": ("{v} website visit a year while in a project",
                                    "{v} website visits a year while in a project"),
    "weighted_nps": ("NPS {v} (weighted by replies)",) * 2,
    "employees": ("{v} employee", "{v} employees"),
}

# A purchase log's engagements are its purchases (engagements.instant): the same features
# in its words.
PURCHASE_FACTOR_TEXT = {
    "days_since_deal_won": ("no purchase for {v} day", "no purchase for {v} days"),
    "deals_won": ("{v} purchase", "{v} purchases"),
    "tenure_days": ("customer for {v} day", "customer for {v} days"),
    "days_since_engagement_end": ("no purchase for {v} day", "no purchase for {v} days"),
}
# ... and where its touchpoints are nothing but purchases (sql/analysis/purchases_only.sql).
ONLY_PURCHASES_FACTOR_TEXT = {
    "days_since_last_touch": ("no purchase for {v} day", "no purchase for {v} days"),
    "touches_90d": ("{v} purchase in the last 90 days", "{v} purchases in the last 90 days"),
    "crm_90d": ("{v} purchase in the last 90 days", "{v} purchases in the last 90 days"),
    "touches_prev_90d": ("{v} purchase 90-180 days ago", "{v} purchases 90-180 days ago"),
    "touch_trend": ("purchases {v:+d} vs the 90 days before",) * 2,
}


# Which way a feature reads as a risk to a person: +1 more is riskier (tickets, silence),
# -1 less is riskier (contact, NPS). A factor is shown only when the model's push and this
# direction agree, so a list never says "0 unsubscribes" raised the risk. Features with
# no plain reading as a risk (size, industry, counts of past deals) are not shown.
RISK_DIRECTION = {
    "support_tickets_60d": 1, "support_tickets_180d": 1, "low_nps_180d": 1, "last_nps": -1,
    "days_since_last_touch": 1, "touches_90d": -1, "touch_trend": -1, "web_90d": -1,
    "email_90d": -1, "crm_90d": -1, "days_since_engagement_end": 1,
    "email_negative_180d": 1, "contacts_engaged_180d": -1, "roles_engaged": -1,
    "in_open_engagement": -1, "deals_lost": 1, "advocacy_signals": -1,
    "tickets_per_year": 1, "mean_nps": -1, "web_visits_per_month": -1,
    "email_interactions_per_month": -1, "tickets_per_project_year": 1,
    "web_visits_per_project_year": -1, "weighted_nps": -1,
}


def features_at(con: duckdb.DuckDBPyConnection, as_of: dt.datetime | list[dt.datetime],
                horizon_days: int, kind: str = "contractual") -> pd.DataFrame:
    """Clients at `as_of` (one date, or a list of snapshot dates computed in one pass)
    with their features (data up to each date only) and label.

    `kind`: contractual (churn is a cancel activity within the horizon) or
    non_contractual (no new engagement start within the horizon).
    """
    dates = list(as_of) if isinstance(as_of, list | tuple) else [as_of]
    frame = con.sql(read_sql("analysis/churn_features"),
                    params={"as_ofs": dates, "horizon_days": horizon_days,
                            "churn_kind": kind}).df()
    frame["in_open_engagement"] = frame["in_open_engagement"].astype(float)
    return frame


def snapshot_dates(as_of: dt.datetime, horizon_days: int, step_days: int,
                   earliest: dt.datetime, max_snapshots: int = 36) -> list[dt.datetime]:
    """Labelled snapshot dates, newest first: T + horizon <= as_of, T >= earliest.

    At most `max_snapshots` (the newest): a long history, or a stray date far from
    the rest, must not multiply the work (each date multiplies the rows joined).
    """
    dates, t = [], as_of - dt.timedelta(days=horizon_days)
    while t >= earliest and len(dates) < max_snapshots:
        dates.append(t)
        t -= dt.timedelta(days=step_days)
    return dates


def history_snapshots(con: duckdb.DuckDBPyConnection, horizon_days: int = 180,
                      step_days: int = 30, max_snapshots: int = 36
                      ) -> tuple[list[dt.datetime], pd.DataFrame | None]:
    """The snapshot dates from the first engagement start to the build's as-of, and every
    snapshot's clients with features and label (one pass; None without any start)."""
    _, kind, dates = _history_dates(con, horizon_days, step_days, max_snapshots)
    # Every snapshot's features in one pass over the journeys (a join on the dates).
    return dates, (features_at(con, dates, horizon_days, kind) if dates else None)


def _history_dates(con, horizon_days: int, step_days: int, max_snapshots: int
                   ) -> tuple[dt.datetime, str, list[dt.datetime]]:
    """The build's as-of date, churn kind and labelled snapshot dates."""
    as_of, kind = con.execute("SELECT as_of, churn_kind FROM run_parameters").fetchall()[0]
    first = con.execute(
        "SELECT min(occurred_at) FROM int_touchpoints_staged "
        "WHERE activity IN (SELECT activity FROM engagement_rules WHERE role = 'start')"
    ).fetchall()[0][0]
    dates = (snapshot_dates(as_of, horizon_days, step_days, first, max_snapshots)
             if first else [])
    return as_of, kind, dates


class ChurnModel(BaseEstimator, ClassifierMixin):
    """Preprocessing and a sigmoid-calibrated logistic regression in one Pipeline.

    Parameters are stored as given; the fitted pipeline is `pipeline_`.
    """

    def __init__(self, C: float = 0.001, features: tuple[str, ...] | None = None,
                 random_state: int = 0, purchase_words: str | None = None):
        self.C = C
        self.features = features
        self.purchase_words = purchase_words
        self.random_state = random_state

    def _columns(self):
        numeric = list(self.features) if self.features else NUMERIC
        categorical = [] if self.features else CATEGORICAL
        return numeric, categorical

    def fit(self, X: pd.DataFrame, y) -> ChurnModel:
        """Fit the calibrated logistic regression on snapshot features and labels."""
        numeric, categorical = self._columns()
        transformers = [("numeric", Pipeline([
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler())]), numeric)]
        if categorical:
            transformers.append(
                ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical))
        y = np.asarray(y).astype(int)
        folds = int(max(2, min(3, y.sum(), len(y) - y.sum())))
        self.pipeline_ = Pipeline([
            ("features", ColumnTransformer(transformers)),
            ("model", CalibratedClassifierCV(
                LogisticRegression(C=self.C, max_iter=2000, random_state=self.random_state),
                method="sigmoid", cv=folds, ensemble=False)),
        ]).fit(X, y)
        self.classes_ = self.pipeline_.classes_
        self.typical_ = X[numeric].median(numeric_only=True)
        return self

    def _text(self, feature: str, value) -> str:
        words = {None: FACTOR_TEXT, "purchases": {**FACTOR_TEXT, **PURCHASE_FACTOR_TEXT},
                 "only purchases": {**FACTOR_TEXT, **PURCHASE_FACTOR_TEXT,
                                    **ONLY_PURCHASES_FACTOR_TEXT}}[self.purchase_words]
        return _factor_text(feature, value, words)

    def _typical(self, feature: str) -> str:
        value = self.typical_.get(feature)
        return "none" if value is None or pd.isna(value) else f"{value:.0f}"

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities of [staying, churning] per row."""
        return self.pipeline_.predict_proba(X)

    def top_factors(self, X: pd.DataFrame, k: int = 3) -> list[str]:
        """Per row, the k features that push its risk up most, in words, with the typical
        value of the clients it was trained on; only features whose value reads as a risk
        (RISK_DIRECTION) are named."""
        numeric, _ = self._columns()
        features = self.pipeline_.named_steps["features"]
        regression = self.pipeline_.named_steps["model"].calibrated_classifiers_[0].estimator
        names = list(features.get_feature_names_out())
        coef = dict(zip(names, regression.coef_[0], strict=True))
        scaled = features.transform(X)
        cols = [c for c in numeric if c in RISK_DIRECTION]
        at = [names.index(f"numeric__{c}") for c in cols]
        z = np.asarray(scaled[:, at], dtype=float)
        push = z * np.array([coef[f"numeric__{c}"] for c in cols])
        reads_as_risk = np.array([RISK_DIRECTION[c] for c in cols]) * z > 0
        # a value that reads as the typical one in words ("+0 (typical: 0)") is no reason
        typical = pd.Series([self.typical_.get(c) for c in cols], dtype="Float64").to_numpy(
            dtype=float, na_value=np.nan)
        shown = X[cols].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        as_typical = np.round(shown) == np.round(typical)
        push = np.where(reads_as_risk & ~as_typical & (push > 0.05), push, -np.inf)
        top = np.argsort(-push, axis=1, kind="stable")[:, :k]  # vectorised: one pass
        values = X[cols].to_numpy(dtype=object)
        texts = []
        for i, row_top in enumerate(top):
            words = [f"{self._text(cols[j], values[i, j])} (typical: {self._typical(cols[j])})"
                     for j in row_top if np.isfinite(push[i, j])]
            texts.append("; ".join(dict.fromkeys(words)))  # one reading said once
        return self._weaker_reasons(X, scaled, names, coef, texts)

    def _weaker_reasons(self, X, scaled, names, coef, texts: list[str]) -> list[str]:
        """A row whose risk no single signal explains still gets its largest push in words:
        a feature that pushes up although its value does not read as a risk on its own
        (e.g. a long tenure in a segment that leaves), or its segment (industry). Only a
        row with nothing pushing up says "no strong risk signal"."""
        numeric, categorical = self._columns()
        pushes = np.asarray(scaled, dtype=float) * np.array([coef[n] for n in names])
        for i, text in enumerate(texts):
            if text:
                continue
            best = int(np.argmax(pushes[i]))
            if pushes[i, best] <= 0:
                texts[i] = "no strong risk signal"
                continue
            name = names[best]
            if name.startswith("numeric__"):
                feature = name.removeprefix("numeric__")
                reason = (f"{self._text(feature, X[feature].iloc[i])} (typical: "
                          f"{self._typical(feature)})")
            else:
                column = next(c for c in categorical if name.startswith(f"categorical__{c}_"))
                reason = f"{column}: {X[column].iloc[i]} (clients of it leave more often)"
            texts[i] = reason + (", with this model's weights" if pushes[i, best] > 0.05
                                 else ", the largest of many small signals")
        return texts


# The regularisation strengths tried; the strongest is the default when the training rows
# are too few to choose (a prior towards the base rate, not a fit).
C_GRID = (0.001, 0.01, 0.1, 1.0)


def choose_C(train: pd.DataFrame, horizon_days: int, random_state: int = 0) -> float:
    """The regularisation strength for this training set, chosen on its own history: fit
    on the snapshots whose labels were known by the third-newest training snapshot, score
    the three newest (Brier), keep the strongest shrinkage within one standard error of
    the best. Never looks at the rows it will be tested on."""
    dates = sorted(train.as_of.unique())[-3:]
    inner = train[train.as_of + pd.Timedelta(days=horizon_days) <= dates[0]]
    check = train[train.as_of.isin(dates)]
    if (len(inner) < MIN_TRAIN_ROWS or inner.label.sum() < MIN_TRAIN_POSITIVES
            or check.label.nunique() < 2):
        return C_GRID[0]
    y, truth = inner.label.astype(int), check.label.astype(int).to_numpy()
    errors = np.array([(ChurnModel(C=c, random_state=random_state).fit(inner, y)
                        .predict_proba(check)[:, 1] - truth) ** 2 for c in C_GRID])
    mean = errors.mean(axis=1)
    best = int(np.argmin(mean))
    # The one-standard-error rule (Hastie, Tibshirani & Friedman, 7.10): the strongest
    # shrinkage whose Brier score is within one standard error of the best, since a
    # few hundred validation rows cannot tell close strengths apart.
    bound = mean[best] + errors[best].std(ddof=1) / np.sqrt(errors.shape[1])
    return C_GRID[int(np.flatnonzero(mean <= bound)[0])]


def _factor_text(feature: str, value, words: dict = FACTOR_TEXT) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return {"last_nps": "no NPS reply"}.get(feature, f"no {feature.replace('_', ' ')}")
    v = int(round(float(value)))
    singular, plural = words.get(feature, (feature.replace("_", " ") + ": {v}",) * 2)
    if feature in ("in_open_engagement", "advocacy_signals"):
        return (singular if v == 0 else plural).format(v=v)
    return (singular if abs(v) == 1 else plural).format(v=v)


def _scores(y, p) -> dict:
    y = np.asarray(y).astype(int)
    return {"roc_auc": float(roc_auc_score(y, p)), "pr_auc": float(average_precision_score(y, p)),
            "brier": float(brier_score_loss(y, p))}


@dataclass
class Backtest:
    """A rolling time backtest: the model and the baselines on later snapshots."""
    status: str  # 'ok' or the reason the data is too thin
    test_dates: list = field(default_factory=list)
    n_train_rows: int = 0
    n_train_positive: int = 0
    n_test_rows: int = 0
    n_test_positive: int = 0
    model: dict = field(default_factory=dict)
    recency_baseline: dict = field(default_factory=dict)
    base_rate_baseline: dict = field(default_factory=dict)
    predictions: pd.DataFrame | None = None  # per test row: account, date, label, scores


def backtest(snapshots: pd.DataFrame, horizon_days: int, n_test_snapshots: int = 6,
             random_state: int = 0) -> Backtest:
    """Rolling-origin evaluation over labelled snapshots (see the module docstring)."""
    labelled = snapshots[snapshots.label.notna()]
    dates = sorted(labelled.as_of.unique(), reverse=True)[:n_test_snapshots]

    def test_on(test_date) -> tuple[pd.DataFrame, int, int] | None:
        train = labelled[labelled.as_of + pd.Timedelta(days=horizon_days) <= test_date]
        train = _training_rows(train, random_state)
        test = labelled[labelled.as_of == test_date]
        y_train = train.label.astype(int)
        if len(train) < MIN_TRAIN_ROWS or y_train.sum() < MIN_TRAIN_POSITIVES:
            return None
        model = ChurnModel(C=choose_C(train, horizon_days, random_state),
                           random_state=random_state).fit(train, y_train)
        recency = ChurnModel(features=("days_since_last_touch",),
                             random_state=random_state).fit(train, y_train)
        return pd.DataFrame({
            "account_id": test.account_id.to_numpy(), "as_of": test.as_of.to_numpy(),
            "label": test.label.astype(int).to_numpy(),
            "model": model.predict_proba(test)[:, 1],
            "recency": recency.predict_proba(test)[:, 1],
            "base_rate": np.full(len(test), y_train.mean()),
        }), len(train), int(y_train.sum())

    # The test dates are independent fits: two at a time, one BLAS thread each (see
    # `score_churn`); results are taken in date order, so the run is the same.
    with threadpool_limits(1), ThreadPoolExecutor(max_workers=2) as pool:
        done = [r for r in pool.map(test_on, dates) if r is not None]
    predictions = [frame for frame, _, _ in done]
    train_rows = max((n for _, n, _ in done), default=0)
    train_pos = max((p for _, _, p in done), default=0)
    if not predictions:
        return Backtest(status="too few labelled snapshots with enough cancellations to train")
    pooled = pd.concat(predictions, ignore_index=True)
    if pooled.label.sum() < MIN_TEST_POSITIVES or pooled.label.nunique() < 2:
        return Backtest(status="too few cancellations in the test snapshots to evaluate")
    return Backtest(
        status="ok", test_dates=[pd.Timestamp(d).to_pydatetime() for d in dates],
        n_train_rows=train_rows, n_train_positive=train_pos, n_test_rows=len(pooled),
        n_test_positive=int(pooled.label.sum()), model=_scores(pooled.label, pooled.model),
        recency_baseline=_scores(pooled.label, pooled.recency),
        base_rate_baseline={"brier": float(brier_score_loss(pooled.label, pooled.base_rate))},
        predictions=pooled,
    )


def risk_band(probability: float, base_rate: float) -> str:
    """high: odds of churning at least twice the base rate's odds; medium: at least the base
    rate; low: below it.

    On the odds scale every band is reachable at any base rate below 1 (at a base rate of
    0.79, "twice the base rate" would need a probability of 1.58; twice the odds is 0.88),
    and at low base rates it is close to twice the rate (0.18 at 0.10). A probability of 0
    is low whatever the base rate (with no churn in the history the base rate is 0 too).
    """
    if probability <= 0:
        return "low"
    if base_rate <= 0 or probability >= 1:
        return "high"
    odds = probability / (1 - probability)
    if base_rate < 1 and odds >= 2 * base_rate / (1 - base_rate):
        return "high"
    return "medium" if probability >= base_rate else "low"


def reliability(label, probability, bins: int = 10) -> str:
    """The reliability curve of backtest predictions as JSON: per bin of equal size (by
    predicted probability) the mean prediction, the observed rate and the rows. A
    calibrated model's points lie on the diagonal."""
    import json

    frame = pd.DataFrame({"y": np.asarray(label, dtype=float),
                          "p": np.asarray(probability, dtype=float)}).sort_values("p")
    frame["bin"] = np.arange(len(frame)) * bins // max(len(frame), 1)
    points = frame.groupby("bin").agg(predicted=("p", "mean"), observed=("y", "mean"),
                                      rows=("y", "size"))
    return json.dumps([{k: (int(v) if k == "rows" else round(float(v), 4))
                        for k, v in row.items()} for row in points.to_dict("records")])


# Below this backtest ROC AUC a ranking is not shown as reliable, whatever it beats.
RELIABLE_ROC_AUC = 0.6


def ranking_verdict(run) -> str | None:
    """What the backtest says of the model's ranking and probabilities, in one sentence
    for the run log and the report (None when no model was fitted). Four cases: below
    the floor; recency alone ranks better; no better than recency (the gain's interval
    holds zero); better beyond chance. Probabilities no better than the base rate's
    (Brier) are said too: then the order is worth reading, the percentages are not."""
    def get(key):  # a row read back from model_runs has NaN/NA where a value is missing
        value = run.get(key)
        return None if value is None or pd.isna(value) else value

    if get("status") != "trained" or get("roc_auc") is None:
        return None
    auc, recency = get("roc_auc"), get("recency_roc_auc")
    low, high = get("roc_auc_gain_low"), get("roc_auc_gain_high")
    last = "purchase" if get("churn_kind") == "non_contractual" else "touchpoint"
    known = low is not None and high is not None and np.isfinite(low) and np.isfinite(high)
    if auc < RELIABLE_ROC_AUC:
        text = (f"the ranking is not reliable (ROC AUC {auc:.2f}, below "
                f"{RELIABLE_ROC_AUC:.2f}); treat the bands as rough")
    elif known and high < 0:
        text = (f"recency alone ranks better (ROC AUC {recency:.2f} vs {auc:.2f}): sort by "
                f"days since the last {last}")
    elif not known or low <= 0:
        gain = f", gain {low:+.3f} to {high:+.3f}" if known else ""
        text = (f"it ranks no better than recency alone (ROC AUC {auc:.2f} vs "
                f"{recency:.2f}{gain}): days since the last {last} sorts as well")
    else:
        text = (f"it ranks better than recency alone beyond chance (ROC AUC {auc:.2f} vs "
                f"{recency:.2f})")
    brier, base = get("brier"), get("base_rate_brier")
    if brier is not None and base is not None and brier >= base:
        text += (f"; its probabilities are no better than the base rate's (Brier "
                 f"{brier:.3f} vs {base:.3f}): read the order, not the percentages")
    return text


def auc_gain_interval(label, model, recency, n_boot: int = 200,
                      random_state: int = 0) -> tuple[float, float]:
    """95 % paired-bootstrap interval of ROC AUC(model) - ROC AUC(recency) on the same
    backtest rows: does the model rank better than recency alone, beyond chance?"""
    label, model, recency = (np.asarray(v) for v in (label, model, recency))
    rng = np.random.default_rng(random_state)
    gains = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(label), len(label))
        if len(np.unique(label[pick])) < 2:
            continue
        gains.append(roc_auc_score(label[pick], model[pick])
                     - roc_auc_score(label[pick], recency[pick]))
    if not gains:
        return float("nan"), float("nan")
    return float(np.quantile(gains, 0.025)), float(np.quantile(gains, 0.975))


def _fallback_factors(row) -> str:
    words = []
    if row.support_tickets_60d:
        words.append(_factor_text("support_tickets_60d", row.support_tickets_60d))
    if row.low_nps_180d:
        words.append(_factor_text("low_nps_180d", row.low_nps_180d))
    if row.days_since_last_touch > 90:
        words.append(_factor_text("days_since_last_touch", row.days_since_last_touch))
    return "; ".join(words) or "no strong risk signal"


def _purchase_backtest(purchases: pd.DataFrame, test_dates, horizon_days: int
                       ) -> pd.DataFrame | None:
    """BG/NBD on held-back periods of the same data: at each test date T, fitted on the
    purchases up to T only, P(no purchase in (T, T + horizon]) against what happened.
    Per (customer, T): label (1 = no purchase), the model's probability and the days
    since the last purchase (the recency baseline). None when no date can be fitted."""
    from journey_mining.purchase_model import score_purchases

    frames = []
    for test_date in test_dates:
        test_date = pd.Timestamp(test_date)
        scored = score_purchases(purchases, test_date, horizon_days)
        if scored is None:
            continue
        later = purchases[(purchases.purchased_at > test_date) & (
            purchases.purchased_at <= test_date + pd.Timedelta(days=horizon_days))]
        bought = later.account_id.unique()
        frames.append(pd.DataFrame({
            "account_id": scored.index.to_numpy(), "as_of": test_date,
            "label": (~scored.index.isin(bought)).astype(int),
            "bgnbd_raw": scored.churn_probability.to_numpy(),
            "recency": ((scored.age - scored.recency) * 7).to_numpy()}))
    if not frames:
        return None
    pooled = pd.concat(frames, ignore_index=True)
    if pooled.label.nunique() < 2:
        return None
    pooled["bgnbd"], pooled.attrs["calibrated"] = cross_fitted_calibration(
        pooled.bgnbd_raw, pooled.label, pooled.as_of)
    return pooled


def _logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class Calibration:
    """Platt scaling on the logit, P(label) = sigmoid(slope * logit(p) + intercept), that
    never extrapolates: a probability outside the range it was fitted on is read as the
    nearest end of that range (a fit on backtest scores near 0.01 says nothing about a
    score of 0.13)."""
    slope: float
    intercept: float
    low: float
    high: float

    def __call__(self, probability) -> np.ndarray:
        z = np.clip(_logit(probability), self.low, self.high)
        return 1 / (1 + np.exp(-(self.slope * z + self.intercept)))


def fit_calibration(probability, label) -> Calibration | None:
    """The calibration of `probability` against what happened. A model that is calibrated
    already gets slope 1 and intercept 0 (up to noise); one that misstates churn on this
    data (BG/NBD's assumptions are one world too) is pulled back to what happened. None
    when the scores do not rank the labels the right way (a slope of 0 or less): then no
    map of them can be trusted."""
    z = _logit(probability)
    fit = LogisticRegression(C=1e4, max_iter=1000).fit(z.reshape(-1, 1),
                                                      np.asarray(label).astype(int))
    slope = float(fit.coef_[0, 0])
    if slope <= 0:
        return None
    return Calibration(slope, float(fit.intercept_[0]), float(z.min()), float(z.max()))


def cross_fitted_calibration(probability, label, as_of) -> tuple[np.ndarray, bool]:
    """Backtest probabilities calibrated out of period: each test date's by a calibration
    fitted on the other dates. Used only when that beats the raw scores on Brier over the
    dates (a calibration that cannot be checked on another period, with one date, or that
    does not help is not applied). Returns the probabilities the evaluation reports and
    whether the clients' scores are to be calibrated."""
    probability, label = np.asarray(probability, float), np.asarray(label).astype(int)
    dates = pd.Series(pd.to_datetime(as_of)).to_numpy()
    if len(np.unique(dates)) < 2:
        return probability, False
    out = probability.copy()
    for date in np.unique(dates):
        held = dates == date
        calibration = (fit_calibration(probability[~held], label[~held])
                       if np.unique(label[~held]).size == 2 else None)
        if calibration is None:
            return probability, False
        out[held] = calibration(probability[held])
    if brier_score_loss(label, out) >= brier_score_loss(label, probability):
        return probability, False
    return out, True


def _purchase_signals(purchases: pd.DataFrame, as_of, accounts) -> list[str]:
    """A purchase log's signals when nothing could be fitted: per customer the days since
    the last purchase and how often it bought."""
    from journey_mining.purchase_model import purchase_summary

    summary = purchase_summary(purchases, pd.Timestamp(as_of)).reindex(accounts)
    words = []
    for row in summary.itertuples():
        if pd.isna(row.frequency):
            words.append("no purchase yet")
            continue
        since, n = (row.age - row.recency) * 7, int(row.frequency) + 1
        words.append(f"no purchase for {since:.0f} days; {n} purchase{'s' if n > 1 else ''}"
                     + (f", one every {row.recency * 7 / row.frequency:.0f} days"
                        if row.frequency else ""))
    return words


def _purchase_reason(purchases: pd.DataFrame, as_of, horizon_days: int) -> str:
    """Why a purchase log could not be scored, in its own words."""
    from journey_mining.purchase_model import MIN_CUSTOMERS, purchase_summary

    repeat = int((purchase_summary(purchases, pd.Timestamp(as_of)).frequency > 0).sum())
    return (f"too little purchase history: {repeat:,} customers bought more than once "
            f"(BG/NBD needs {MIN_CUSTOMERS}), and too few {horizon_days}-day outcomes have "
            "been seen to learn from")


def _purchase_test_dates(purchases: pd.DataFrame, result: Backtest, as_of,
                         horizon_days: int) -> list:
    """The discriminative backtest's test dates (to compare on the same rows), or the one
    classic split (history up to as-of - horizon, the horizon after it held back)."""
    if result.test_dates:
        return result.test_dates
    split = pd.Timestamp(as_of) - pd.Timedelta(days=horizon_days)
    first = purchases.purchased_at.min() if len(purchases) else None
    return [split] if first is not None and first < split else []


def _choose(result: Backtest, logistic_ok: bool,
            purchase: pd.DataFrame | None) -> tuple[str | None, dict]:
    """Which model scores the clients, by Brier score on the backtest rows both models
    predicted (lower is better: a proper score, ranking and calibration together), and
    both models' scores for model_runs."""
    scores = {}
    if purchase is not None:
        scores.update({f"bgnbd_{k}": v for k, v in _scores(purchase.label,
                                                           purchase.bgnbd).items()})
    if logistic_ok:
        scores.update({f"logistic_{k}": v for k, v in result.model.items()})
    if purchase is None:
        return ("logistic" if logistic_ok else None), scores
    if not logistic_ok:
        return "bgnbd", scores
    both = result.predictions.merge(purchase[["account_id", "as_of", "bgnbd"]],
                                    on=["account_id", "as_of"])
    if len(both) == 0 or both.label.nunique() < 2:
        return "logistic", scores
    logistic = brier_score_loss(both.label, both.model)
    bgnbd = brier_score_loss(both.label, both.bgnbd)
    scores.update({"compared_rows": len(both), "logistic_brier_compared": float(logistic),
                   "bgnbd_brier_compared": float(bgnbd)})
    return ("bgnbd" if bgnbd < logistic else "logistic"), scores


# A BG/NBD parameter beyond these is at the edge of what the history can tell (b of 1e13:
# no dropout seen yet); its probabilities then rest on the purchase-rate part alone.
_BOUNDARY = (1e-4, 1e5)


def _params_text(params) -> str | None:
    """The fitted (r, alpha, a, b) in words for model_runs, flagged at the boundary."""
    if params is None:
        return None
    text = ", ".join(f"{name} = {value:.4g}" for name, value in
                     zip(("r", "alpha", "a", "b"), params, strict=True))
    edge = [n for n, v in zip(("r", "alpha", "a", "b"), params, strict=True)
            if not _BOUNDARY[0] <= v <= _BOUNDARY[1]]
    return text + (f" (at the boundary: {', '.join(edge)})" if edge else "")


@dataclass
class ChurnScorer:
    """What scores the clients: the model chosen at the last fit, as fitted then. Kept
    between fits (fits.store_fit) so a nightly run scores today's clients with last
    week's fit instead of fitting again."""
    chosen: str | None               # "logistic", "bgnbd", or None (nothing could fit)
    base_rate: float                 # what the risk bands are relative to
    model: ChurnModel | None = None  # the logistic model
    bgnbd: object | None = None      # purchase_model.BetaGeoModel
    calibration: Calibration | None = None   # of BG/NBD's raw probabilities
    fit: dict = field(default_factory=dict)  # regularisation_c, bgnbd_params, calibrated

    def score(self, current: pd.DataFrame, purchases, as_of, horizon_days: int
              ) -> pd.DataFrame:
        """The clients of `current` (features at `as_of`) scored, riskiest first."""
        scores = current[["account_id"]].copy()
        scores["as_of"] = as_of
        if self.chosen == "bgnbd" and len(current):
            from journey_mining.purchase_model import purchase_reasons, score_purchases

            scored = score_purchases(purchases, pd.Timestamp(as_of), horizon_days,
                                     accounts=current.account_id, model=self.bgnbd)
            raw = scored.churn_probability.fillna(self.base_rate).to_numpy()
            scores["churn_probability"] = self.calibration(raw) if self.calibration else raw
            scores["risk_band"] = [risk_band(p, self.base_rate)
                                   for p in scores.churn_probability]
            scores["top_factors"] = purchase_reasons(scored)
            scores["model"] = "bg_nbd"
        elif self.chosen == "logistic" and len(current):
            scores["churn_probability"] = self.model.predict_proba(current)[:, 1]
            scores["risk_band"] = [risk_band(p, self.base_rate)
                                   for p in scores.churn_probability]
            scores["top_factors"] = self.model.top_factors(current)
            scores["model"] = "calibrated_logistic"
        else:
            # Nothing could be fitted: no probability and no band (a constant would look
            # like a score), only the signals seen; the report and the run log say why.
            scores["churn_probability"] = np.nan
            scores["risk_band"] = None
            scores["top_factors"] = (
                _purchase_signals(purchases, as_of, current.account_id)
                if purchases is not None else [_fallback_factors(r) for r in current.itertuples()])
            scores["model"] = "fallback"
        return scores.sort_values("churn_probability", ascending=False, kind="stable",
                                  na_position="last")


@dataclass
class ChurnRun:
    """One churn step: the scores of today's clients, the run's evaluation (a model_runs
    row) and the scorer that made them."""
    scores: pd.DataFrame
    run: dict
    scorer: ChurnScorer | None = None


def _fit_scorer(chosen, labelled, purchases, purchase, base_rate, as_of, horizon_days: int,
                random_state: int, words: str | None = None) -> ChurnScorer:
    """Fit the chosen model on all labelled history up to the as-of date."""
    if chosen == "bgnbd":
        from journey_mining.purchase_model import score_purchases

        fitted = score_purchases(purchases, pd.Timestamp(as_of), horizon_days)
        calibration = (fit_calibration(purchase.bgnbd_raw, purchase.label)
                       if purchase.attrs.get("calibrated") else None)
        return ChurnScorer(
            "bgnbd", float(purchase.label.mean()), bgnbd=fitted.attrs["model"],
            calibration=calibration,
            fit={"bgnbd_params": _params_text(fitted.attrs.get("params")),
                 "bgnbd_calibrated": calibration is not None})
    if chosen == "logistic":
        train = _training_rows(labelled, random_state)
        c = choose_C(train, horizon_days, random_state)
        model = ChurnModel(C=c, random_state=random_state,
                           purchase_words=words).fit(train, train.label.astype(int))
        return ChurnScorer("logistic", base_rate, model=model, fit={"regularisation_c": c})
    return ChurnScorer(None, base_rate)


def _evaluation(chosen, result: Backtest, purchase, random_state: int) -> dict:
    """The chosen model's backtest in model_runs' words: its scores, recency's on the same
    rows, the gain interval and the reliability curve."""
    if chosen == "bgnbd":
        label, predicted, recency_score = purchase.label, purchase.bgnbd, purchase.recency
        evaluated = _scores(label, predicted)
        recency = {"roc_auc": float(roc_auc_score(label, recency_score)),
                   "pr_auc": float(average_precision_score(label, recency_score))}
        dates = sorted({pd.Timestamp(d) for d in purchase.as_of})
        rows, positive = len(purchase), int(label.sum())
        base_rate_brier = float(brier_score_loss(label, np.full(len(label), label.mean())))
    else:
        evaluated, recency = result.model, result.recency_baseline
        dates, rows, positive = result.test_dates, result.n_test_rows, result.n_test_positive
        scored = chosen is not None and result.predictions is not None
        label, predicted, recency_score = (
            (result.predictions.label, result.predictions.model, result.predictions.recency)
            if scored else (None, None, None))
        base_rate_brier = result.base_rate_baseline.get("brier")
    gain = (auc_gain_interval(label, predicted, recency_score, random_state=random_state)
            if label is not None else (None, None))
    return {
        "backtest_test_dates": ", ".join(f"{d:%Y-%m-%d}" for d in dates),
        "n_test_rows": rows, "n_test_positive": positive,
        "roc_auc": evaluated.get("roc_auc"), "pr_auc": evaluated.get("pr_auc"),
        "brier": evaluated.get("brier"), "recency_roc_auc": recency.get("roc_auc"),
        "recency_pr_auc": recency.get("pr_auc"), "recency_brier": recency.get("brier"),
        "roc_auc_gain_low": gain[0], "roc_auc_gain_high": gain[1],
        "reliability": reliability(label, predicted) if label is not None else None,
        "base_rate_brier": base_rate_brier,
    }


@threadpool_limits.wrap(limits=1)
def score_churn(con: duckdb.DuckDBPyConnection, horizon_days: int = 180, step_days: int = 30,
                n_test_snapshots: int = 6, random_state: int = 0,
                max_snapshots: int = 36) -> ChurnRun:
    """Backtest, fit on all labelled history, and score the clients at the build's as-of.

    The fits run with one BLAS thread: their products are small enough that threads cost
    more than they give (10 M events: the churn step 15.9 s with two, 11.9 s with one).
    """
    as_of, kind, dates = _history_dates(con, horizon_days, step_days, max_snapshots)
    # Today's clients and every snapshot in one pass: the as-of date is one date more.
    frame = features_at(con, [as_of, *dates], horizon_days, kind)
    now = (frame.as_of == pd.Timestamp(as_of)).to_numpy()
    current, snapshots = frame[now].reset_index(drop=True), frame[~now]
    labelled = snapshots[snapshots.label.notna()]
    base_rate = float(labelled.label.astype(float).mean()) if len(labelled) else 0.0
    result = backtest(snapshots, horizon_days, n_test_snapshots, random_state)
    enough = (result.status == "ok" and len(labelled) >= MIN_TRAIN_ROWS
              and labelled.label.sum() >= MIN_TRAIN_POSITIVES)
    purchases, purchase, chosen, compared = None, None, ("logistic" if enough else None), {}
    words = None
    if kind == "non_contractual":
        purchases = con.execute(read_sql("analysis/purchases")).df()
        purchase = _purchase_backtest(
            purchases, _purchase_test_dates(purchases, result, as_of, horizon_days),
            horizon_days)
        chosen, compared = _choose(result, enough, purchase)
        words = ("only purchases" if con.execute(read_sql("analysis/purchases_only")
                                                 ).fetchall()[0][0] else "purchases")
    scorer = _fit_scorer(chosen, labelled, purchases, purchase, base_rate, as_of,
                         horizon_days, random_state, words)
    scores, base_rate, fit = (scorer.score(current, purchases, as_of, horizon_days),
                              scorer.base_rate, scorer.fit)
    trained = chosen is not None
    quality = _evaluation(chosen, result, purchase, random_state)
    run = {
        "as_of": as_of, "trained_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
        "status": "trained" if trained else "fallback",
        "reason": ("ok" if trained else _purchase_reason(purchases, as_of, horizon_days)
                   if purchases is not None else result.status),
        "model": {"bgnbd": "bg_nbd", "logistic": "calibrated_logistic"}.get(chosen,
                                                                             "fallback"),
        "horizon_days": horizon_days, "step_days": step_days,
        "churn_kind": kind, "n_snapshots": len(dates), "n_labelled_rows": len(labelled),
        "n_labelled_positive": int(labelled.label.sum()) if len(labelled) else 0,
        "base_rate": base_rate, "n_scored": len(scores),
        **quality,
        **{k: compared.get(k) for k in (
            "logistic_roc_auc", "logistic_brier", "bgnbd_roc_auc", "bgnbd_brier",
            "compared_rows", "logistic_brier_compared", "bgnbd_brier_compared")},
    }
    # Beyond chance: the paired-bootstrap interval of the gain lies above zero.
    run["beats_recency_baseline"] = bool(
        run["roc_auc_gain_low"] is not None and np.isfinite(run["roc_auc_gain_low"])
        and run["roc_auc_gain_low"] > 0)
    run["regularisation_c"] = fit.get("regularisation_c")
    run["bgnbd_params"] = fit.get("bgnbd_params")
    run["bgnbd_calibrated"] = fit.get("bgnbd_calibrated")
    run["bgnbd_at_boundary"] = bool(fit.get("bgnbd_params") and "boundary" in
                                    fit["bgnbd_params"])
    # Reliable: good enough to rank on, and better than recency beyond chance.
    gain = run["roc_auc_gain_low"]
    run["ranking_reliable"] = bool(
        run["roc_auc"] is not None and run["roc_auc"] >= RELIABLE_ROC_AUC
        and gain is not None and np.isfinite(gain) and gain > 0)
    run["fitted_at"], run["fit_as_of"] = run["trained_at"], as_of
    return ChurnRun(scores.reset_index(drop=True), run, scorer)


@threadpool_limits.wrap(limits=1)
def rescore_churn(con: duckdb.DuckDBPyConnection, scorer: ChurnScorer, fitted: dict,
                  horizon_days: int = 180) -> ChurnRun:
    """Score the clients at the build's as-of date with a scorer fitted before (the
    runs between two fits): no backtest, no fit. The run's evaluation is the fit's
    (`fitted`, its model_runs row), with this run's date and count of clients."""
    as_of, kind = con.execute("SELECT as_of, churn_kind FROM run_parameters").fetchall()[0]
    current = features_at(con, [as_of], horizon_days, kind)
    purchases = (con.execute(read_sql("analysis/purchases")).df()
                 if kind == "non_contractual" else None)
    scores = scorer.score(current, purchases, as_of, horizon_days)
    run = {**fitted, "as_of": as_of, "n_scored": len(scores),
           "trained_at": dt.datetime.now(dt.UTC).replace(tzinfo=None)}
    return ChurnRun(scores.reset_index(drop=True), run, scorer)


def store_churn(con: duckdb.DuckDBPyConnection, run: ChurnRun) -> None:
    """Replace `churn_scores`; append the run's evaluation to `model_runs`."""
    record = pd.DataFrame([run.run])
    # Metrics are empty on a fallback run; keep them DOUBLE so later runs append cleanly.
    metrics = [c for c in record.columns
               if c.endswith(("auc", "brier", "rate", "compared", "compared_rows",
                              "gain_low", "gain_high", "_c"))]
    record[metrics] = record[metrics].astype(float)
    # So are the texts and flags of a model not fitted (a column of nothing but NULLs
    # would be stored, and exported as Parquet, with no type at all).
    record = record.astype({column: kind for column, kind in (
        ("bgnbd_params", "string"), ("reliability", "string"),
        ("bgnbd_calibrated", "boolean")) if column in record.columns})
    scores = run.scores.astype({"risk_band": "string"} if "risk_band" in run.scores else {})
    with transaction(con):
        store_frame(con, "churn_scores", scores)
        store_frame(con, "model_runs", record, append=True)
