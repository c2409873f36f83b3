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
   ("code", "from journey_mining import reports\n\ndata = reports.report_data(con)\nreports.build_process_map_figure(data.stage_transitions, data.occupancy)"),
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
   ("md", "## The same warehouse at another as-of date\n`run_all` runs the pipeline's declared steps without Prefect. On a copy of the warehouse, rebuild at an earlier date: every table (marts, stage states, mining, churn) moves to that date together, so nothing mixes two dates. Pass `Config` with another `analysis.stage_map` to try another stage map the same way."),
   ("code", "import datetime as dt\nimport shutil\nimport tempfile\n\nfrom journey_mining import run_all\n\nscratch = Path(tempfile.mkdtemp()) / 'earlier.duckdb'\nshutil.copy(WAREHOUSE, scratch)\nrun_all(scratch, as_of=dt.datetime(2024, 12, 31), steps=['build', 'mining', 're-engagement', 'churn risk', 'data tests'])\nearlier = warehouse.connect(scratch, read_only=True)\nearlier.sql('SELECT as_of, prospects, clients_ever, prospect_to_client_rate, re_engagement_rate FROM journey_kpis').df()"),
   ("code", "# every step moved to the same date\nearlier.sql(\"SELECT (SELECT as_of FROM run_parameters) AS build, (SELECT max(as_of) FROM churn_scores) AS churn, (SELECT max(as_of) FROM model_runs WHERE trained_at = (SELECT max(trained_at) FROM model_runs)) AS model\").df()"),
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
   ("md", "## Reproduce the stored run, then change it\n`score_churn` is what the pipeline ran: with the same settings it gives the ROC AUC stored in `model_runs` (snapshots every 30 days back to the first deal, at most 36). A refit on fewer or other snapshots is a different backtest and gives a different AUC: compare like with like."),
   ("code", "from journey_mining import churn\n\nstored = con.table('model_runs').df().sort_values('trained_at').iloc[-1]\nrun = churn.score_churn(con, horizon_days=int(stored.horizon_days), max_snapshots=int(stored.n_snapshots))\n{'stored ROC AUC': stored.roc_auc, 'reproduced': run.run['roc_auc'], 'recency alone': run.run['recency_roc_auc']}"),
   ("code", "# Your variant: a shorter history (12 snapshots) is a different, smaller backtest\nshorter = churn.score_churn(con, horizon_days=180, max_snapshots=12)\nshorter.run['roc_auc'], shorter.run['recency_roc_auc'], shorter.run['n_test_rows']"),
   ("code", "run.scores.head(5)[['account_id', 'churn_probability', 'risk_band', 'top_factors']]"),
  ]),
"04_attribution_and_drivers.ipynb": notebook(
  "Attribution and conversion drivers",
  "What moves accounts forward, with honest uncertainty: which channels and campaigns get the credit for reaching a stage (rules and data-driven Markov removal effects, each with a bootstrap interval), which touchpoints and buying roles go with moving on (odds ratios controlled for time in stage, false discoveries controlled), and the handful of real journeys that stand for the long tail. Everything is a library function; change a goal, a dimension or a threshold and run again.",
  [("md", "## Attribution: who gets the credit for reaching client\nEach row: a goal, a dimension (marketing_channel, source_medium, channel = recording system, campaign, activity), a model and a value, with its credit share and 95 % bootstrap interval over accounts. The pipeline stored it as `attribution`."),
   ("code", "attribution = con.table('attribution').df()\nclient = attribution[(attribution.goal == 'client') & (attribution.dimension == 'marketing_channel')]\nclient.pivot(index='value', columns='model', values='share').round(3)"),
   ("md", "Each touchpoint's marketing channel comes from ordered rules over its UTM tags, referrer, campaign and CRM activity type (README, \"Marketing channels\"); `source_medium` is web analytics' source / medium."),
   ("code", "con.sql(\"SELECT marketing_channel, source_medium, count(*) AS touchpoints FROM touchpoints GROUP BY ALL ORDER BY touchpoints DESC LIMIT 15\").df()"),
   ("md", "Last touch and the data-driven model disagree most about the channel that closes deals. A removal effect whose interval reaches zero is `uncertain`: not a basis for moving budget."),
   ("code", "markov = attribution[attribution.model == 'markov_1']\nmarkov[['goal', 'dimension', 'value', 'share', 'ci_low', 'ci_high', 'removal_effect', 'uncertain']].sort_values('share', ascending=False).head(15)"),
   ("md", "## Recompute for another goal, with your own number of resamples"),
   ("code", "from journey_mining import attribution as attribution_lib\n\nevaluation = attribution_lib.attribution(con, goals=('evaluation',), dimensions=('campaign',), n_boot_rules=100, n_boot_markov=50)\nevaluation[evaluation.model == 'markov_1'].sort_values('share', ascending=False).head(10)"),
   ("md", "## The Markov chain itself\nFit a chain on any paths and check its algebra against a simulation of the same chain."),
   ("code", "from journey_mining.attribution import MarkovChain\n\nframe = attribution_lib.goal_paths(con, 'client', 'marketing_channel')\npaths = [(tuple(p.value.dropna()), bool(p.converted.iloc[0])) for _, p in frame.groupby('account_id')]\nchain = MarkovChain.fit(paths)\n{'algebra': chain.conversion_probability(), 'simulation': chain.simulate(50_000)}"),
   ("code", "chain.removal_effects(['paid search', 'email', 'sales outreach'])"),
   ("md", "## Conversion drivers\nPer stage step, the touchpoints and buying roles seen before the step (never after it). Odds ratios are controlled for days in the stage; q-values are Benjamini-Hochberg across every test."),
   ("code", "drivers = con.table('conversion_drivers').df()\ndrivers.sort_values('q_value').head(15)[['step', 'driver', 'accounts_with', 'conversion_with', 'conversion_without', 'odds_ratio', 'ci_low', 'ci_high', 'q_value']]"),
   ("code", "from journey_mining import drivers as drivers_lib\n\nwindows, pairs = drivers_lib.driver_frame(con, 'consideration', 'evaluation')\nwindows.converted.mean(), pairs.driver.value_counts().head()"),
   ("md", "## Representative journeys\nA few real paths (medoids by edit distance) that stand for all the others, with how much of the long tail each covers."),
   ("code", "con.table('representative_journeys').df()"),
   ("code", "from journey_mining import reports\n\ndata = reports.report_data(con)\nreports.build_representatives_figure(data.representatives)"),
  ]),
}
for name, nb in books.items():
    nbf.write(nb, Path(__file__).resolve().parent.parent / "notebooks" / name)
print("ok")
