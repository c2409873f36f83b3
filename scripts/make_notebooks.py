"""Writes notebooks/*.ipynb (clean, no outputs). Edit here, run it, commit both."""
from pathlib import Path

import nbformat as nbf

SETUP = '''import os
from pathlib import Path

from journey_mining import warehouse

# The demo warehouse (`make demo` builds it); point JOURNEY_WAREHOUSE elsewhere to explore yours.
WAREHOUSE = Path(os.environ.get("JOURNEY_WAREHOUSE", "../warehouse/demo.duckdb"))
con = warehouse.connect(WAREHOUSE, read_only=True)'''

def notebook(title, intro, cells):
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbf.v4.new_markdown_cell(f"# {title}\n\n{intro}"), nbf.v4.new_code_cell(SETUP)]
    for kind, text in cells:
        nb.cells.append(nbf.v4.new_markdown_cell(text) if kind == "md" else nbf.v4.new_code_cell(text))
    return nb

books = {
"01_journeys_and_paths.ipynb": notebook(
  "Journeys and paths",
  "Explore how accounts really move: identity stitching, the stage paths, and the directly-follows graph at any level and case notion. Everything comes from `journey_mining`; extend it by changing the level, the case notion or the figures.",
  [("md", "## The headline numbers"),
   ("code", "from journey_mining import journeys\n\nprint(journeys.journey_summary(con).to_text())"),
   ("md", "## How identities were stitched\nShare of touchpoints tied to an account, by source and stitching rule."),
   ("code", "con.table('identity_resolution').df()"),
   ("md", "## One account's journey"),
   ("code", "journey = con.table('account_journeys').order('n_touchpoints DESC').limit(1).df()\njourney.T"),
   ("md", "## Event logs at any level and case notion\n`level`: `stage` or `activity`; `case_notion`: `account`, `contact` or `engagement_cycle`; `collapse` merges consecutive repeats."),
   ("code", "from journey_mining import discovery, eventlog\n\nlog = eventlog.event_log(con, level='activity', case_notion='contact', collapse=True)\ndfg = discovery.discover_dfg(log)\ndfg.head(10)"),
   ("code", "variants = discovery.discover_variants(eventlog.event_log(con, level='stage'))\ndiscovery.variants_summary(variants, top_k=10)"),
   ("md", "## Hand the log to pm4py\nThe same log as a pm4py DataFrame, for any algorithm pm4py offers."),
   ("code", "import pm4py\n\nframe = eventlog.to_pm4py(eventlog.event_log(con, level='stage'))\nstarts = pm4py.get_start_activities(frame)\nstarts"),
   ("md", "## The process map"),
   ("code", "from journey_mining import reports\n\ndata = reports.report_data(con)\nreports.build_process_map_figure(data.stage_transitions, data.funnel)"),
   ("code", "reports.build_sankey_figure(data.variants, top_k=8)"),
  ]),
"02_conversion_and_dropoffs.ipynb": notebook(
  "Conversion and drop-offs",
  "The funnel as the contract defines it, where accounts go quiet, how long each step takes (Kaplan-Meier, open journeys censored), and how far journeys are from the textbook ladder.",
  [("code", "funnel = con.table('stage_funnel').df()\nfunnel"),
   ("code", "from journey_mining import reports\n\nreports.build_funnel_figure(funnel)"),
   ("md", "## Time to the next stage\nMedian, p75, p90 days by Kaplan-Meier; empty where fewer than that share move on in the observed time."),
   ("code", "con.table('stage_timing').df()"),
   ("md", "## Kaplan-Meier for your own question\nFor example: days until clients with three or more buying-committee roles engaged come back after an engagement ends (gaps still open are censored)."),
   ("code", "from journey_mining import survival\n\ngaps = con.table('reengagement_gaps').df()\nwide = gaps[gaps.roles_band == '3+ roles']\ncurve = survival.kaplan_meier(wide.gap_days, wide.returned)\ncurve.tail()"),
   ("md", "## Dropped accounts"),
   ("code", "data = reports.report_data(con)\ndata.dropped.head(10)"),
   ("code", "reports.build_dropoff_figure(funnel)"),
   ("md", "## How linear are journeys?"),
   ("code", "con.table('conformance_summary').df().T"),
   ("code", "deviations = con.table('journey_conformance').df()\ndeviations.groupby('is_linear')[['n_skipped_stages', 'n_back_steps', 'n_loops']].mean()"),
   ("code", "reports.build_cohort_figure(data.cohorts)"),
  ]),
"03_churn_and_reengagement.ipynb": notebook(
  "Churn risk and re-engagement",
  "Who comes back between engagements and after what, and which clients are about to leave. The churn model is a scikit-learn estimator: refit it, swap features, or compare it with baselines here.",
  [("md", "## Re-engagement"),
   ("code", "con.table('reengagement_summary').df()"),
   ("code", "from journey_mining import reports\n\ndata = reports.report_data(con)\nreports.build_reengagement_curve_figure(data.curves, segment_type='industry')"),
   ("code", "con.table('gap_touchpoint_lift').df()"),
   ("md", "## Churn: the stored run and scores"),
   ("code", "con.table('model_runs').df().T"),
   ("code", "con.table('churn_scores').limit(10).df()"),
   ("md", "## Refit the model on your own snapshots\nFeatures at any date come from data up to that date only."),
   ("code", "import datetime as dt\n\nfrom journey_mining import churn\n\nas_of = con.table('run_parameters').df().as_of[0]\nfirst = as_of - dt.timedelta(days=540)\ndates = churn.snapshot_dates(as_of, 180, 30, first)\nimport pandas as pd\nsnapshots = pd.concat([churn.features_at(con, d, 180) for d in dates], ignore_index=True)\nlabelled = snapshots[snapshots.label.notna()]\nlabelled.shape"),
   ("code", "result = churn.backtest(snapshots, horizon_days=180)\nresult.status, result.model, result.recency_baseline"),
   ("code", "model = churn.ChurnModel(C=0.05).fit(labelled, labelled.label.astype(int))\ncurrent = churn.features_at(con, as_of, 180)\ncurrent.assign(p=model.predict_proba(current)[:, 1], why=model.top_factors(current)).nlargest(5, 'p')[['account_id', 'p', 'why']]"),
  ]),
}
for name, nb in books.items():
    nbf.write(nb, Path(__file__).resolve().parent.parent / "notebooks" / name)
print("ok")
