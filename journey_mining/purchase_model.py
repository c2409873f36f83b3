"""BG/NBD: who will buy again, for businesses without contracts (purchase logs).

Intuition
---------
In a non-contractual business nobody cancels: a customer who stopped buying looks
like one who buys rarely. The beta-geometric / negative binomial model (Fader,
Hardie & Lee 2005, "Counting your customers the easy way", Marketing Science 24(2))
tells them apart from three numbers per customer, counted after their first
purchase: `frequency` x (repeat purchases), `recency` t_x (time of the last one)
and `age` T (time since the first). While alive a customer buys as a Poisson
process with rate lambda ~ Gamma(r, alpha); after each purchase they drop out with
probability p ~ Beta(a, b). The four parameters are fitted by maximum likelihood
on the closed-form likelihood (FHL 2005, eq. 6), so the model needs no labelled
future: it predicts any horizon, longer than the history included, which is what a
purchase log with a 39-week history and a 39-week question needs.

What the run uses: `p_alive` (eq. 11), `expected_purchases` over a horizon (eq. 10)
and `p_no_purchase` (the probability of no purchase in the horizon: churn in the
non-contractual sense), derived from the same posterior: dead, or alive and no
Poisson event, ((alpha + T) / (alpha + T + t))^(r + x).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

__all__ = ["MIN_CUSTOMERS", "BetaGeoModel", "purchase_reasons", "purchase_summary",
           "score_purchases"]

# Fewer customers than this with a repeat purchase and the four parameters are not
# identified: no fit (the run says so instead).
MIN_CUSTOMERS = 30


def purchase_summary(purchases: pd.DataFrame, as_of, unit_days: float = 7.0) -> pd.DataFrame:
    """Per customer (`account_id`) frequency, recency and age at `as_of` from purchase
    times (`purchased_at`, one row per purchase), in units of `unit_days` (weeks by
    default, as in the paper). Purchases on the same day are one purchase; purchases
    after `as_of` are ignored."""
    days = purchases[purchases.purchased_at <= as_of].assign(
        day=lambda f: f.purchased_at.dt.floor("D"))
    days = days.drop_duplicates(["account_id", "day"])
    grouped = days.groupby("account_id").day.agg(["min", "max", "count"])
    unit = pd.Timedelta(days=unit_days)
    return pd.DataFrame({
        "frequency": grouped["count"] - 1,
        "recency": (grouped["max"] - grouped["min"]) / unit,
        "age": (pd.Timestamp(as_of).floor("D") - grouped["min"]) / unit,
    })


def _log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray,
                    T: np.ndarray) -> np.ndarray:
    """FHL 2005 eq. 6 per customer, in logs (numerically stable: logaddexp)."""
    r, alpha, a, b = params
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    alive = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        dropped = np.where(
            x > 0,
            betaln(a + 1, np.maximum(b + x - 1, 1e-12)) - betaln(a, b)
            - (r + x) * np.log(alpha + t_x),
            -np.inf)
    return common + np.logaddexp(alive, dropped)


@dataclass
class BetaGeoModel:
    """The BG/NBD model; `fit` estimates r, alpha, a, b by maximum likelihood.

    Parameters stored after fit (scikit-learn style): `params_` (r, alpha, a, b),
    `log_likelihood_`, `converged_`. Times are in the units of the summary
    (`purchase_summary`, weeks by default).
    """

    max_iter: int = 500

    def fit(self, frequency, recency, age) -> BetaGeoModel:
        """Maximum likelihood on the customers' (x, t_x, T); returns self."""
        x, t_x, T = (np.asarray(v, dtype=float) for v in (frequency, recency, age))
        # Customers with the same (x, t_x, T) share a likelihood term: fit on the unique
        # triples with their counts (a purchase log has many one-time buyers).
        unique, counts = np.unique(np.column_stack([x, t_x, T]), axis=0, return_counts=True)
        ux, ut, uT = unique.T

        def negative(log_params):
            value = -np.sum(counts * _log_likelihood(np.exp(log_params), ux, ut, uT))
            return value if np.isfinite(value) else 1e300

        best = None
        for start in (np.zeros(4), np.log([0.5, max(float(np.mean(T)), 1.0), 1.0, 2.0])):
            found = minimize(negative, start, method="Nelder-Mead",
                             options={"maxiter": self.max_iter * 4, "xatol": 1e-6,
                                      "fatol": 1e-8})
            found = minimize(negative, found.x, method="L-BFGS-B",
                             options={"maxiter": self.max_iter})
            if best is None or found.fun < best.fun:
                best = found
        self.params_ = np.exp(best.x)
        self.log_likelihood_ = -float(best.fun)
        self.converged_ = bool(best.success) or np.isfinite(best.fun)
        return self

    def p_alive(self, frequency, recency, age) -> np.ndarray:
        """P(still a customer | history), FHL 2005 eq. 11 (1 for no repeat purchase)."""
        r, alpha, a, b = self.params_
        x, t_x, T = (np.asarray(v, dtype=float) for v in (frequency, recency, age))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ratio = np.where(x > 0, (a / np.maximum(b + x - 1, 1e-12))
                             * ((alpha + T) / (alpha + t_x)) ** (r + x), 0.0)
        return 1.0 / (1.0 + ratio)

    def expected_purchases(self, horizon, frequency, recency, age) -> np.ndarray:
        """Expected purchases in (T, T + horizon] given the history, FHL 2005 eq. 10."""
        r, alpha, a, b = self.params_
        x, t_x, T = (np.asarray(v, dtype=float) for v in (frequency, recency, age))
        t = float(horizon)
        z = t / (alpha + T + t)
        hyp = hyp2f1(r + x, b + x, a + b + x - 1, z)
        # (a - 1) < 0 for a < 1 (CDNOW: 0.793) flips the sign of both factors
        value = (a + b + x - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x)
                                             * hyp)
        return np.asarray(value * self.p_alive(x, t_x, T))

    def p_no_purchase(self, horizon, frequency, recency, age) -> np.ndarray:
        """P(no purchase in (T, T + horizon] | history): dropped out, or alive and no
        event of its Poisson process (rate posterior Gamma(r + x, alpha + T))."""
        r, alpha, _, _ = self.params_
        x, _, T = (np.asarray(v, dtype=float) for v in (frequency, recency, age))
        alive = self.p_alive(frequency, recency, age)
        quiet = ((alpha + T) / (alpha + T + float(horizon))) ** (r + x)
        return (1 - alive) + alive * quiet


def score_purchases(purchases: pd.DataFrame, as_of, horizon_days: float,
                    accounts=None, model: BetaGeoModel | None = None) -> pd.DataFrame | None:
    """Fit BG/NBD on the purchases up to `as_of` (or use the `model` fitted before, on
    the runs between two fits) and give, per customer (or per account of `accounts`,
    those without a purchase get none), P(no purchase in the next `horizon_days`),
    P(alive), the expected purchases and its history in days; `attrs["model"]` is the
    fit. None when the history is too thin to fit (fewer than MIN_CUSTOMERS repeat
    buyers)."""
    summary = purchase_summary(purchases, as_of)
    if model is None:
        if (summary.frequency > 0).sum() < MIN_CUSTOMERS:
            return None
        model = BetaGeoModel().fit(summary.frequency, summary.recency, summary.age)
        if not model.converged_:
            return None
    horizon = horizon_days / 7.0
    frame = summary.assign(
        churn_probability=model.p_no_purchase(horizon, summary.frequency, summary.recency,
                                              summary.age),
        p_alive=model.p_alive(summary.frequency, summary.recency, summary.age),
        expected_purchases=model.expected_purchases(horizon, summary.frequency,
                                                    summary.recency, summary.age))
    frame.attrs["params"] = model.params_
    frame.attrs["model"] = model
    if accounts is not None:
        frame = frame.reindex(pd.Index(accounts, name="account_id"))
    return frame


def purchase_reasons(frame: pd.DataFrame) -> list[str]:
    """Per customer the model's reason in words: how long since the last purchase against
    how often they usually buy, and what that makes of P(alive)."""
    words = []
    for row in frame.itertuples():
        if pd.isna(row.frequency):
            words.append("no purchase yet")
            continue
        since = (row.age - row.recency) * 7
        if row.frequency == 0:
            words.append(f"one purchase only, {since:.0f} days ago")
            continue
        every = row.recency * 7 / row.frequency
        alive = "<1%" if row.p_alive < 0.005 else f"{row.p_alive:.0%}"
        words.append(f"no purchase for {since:.0f} days; usually buys every {every:.0f} "
                     f"(P(still a customer) {alive})")
    return words
