-- materialized: view
-- Grain: one row per account with an engagement: its first sale (the start of its first
-- engagement). The evidence method measures pre-sale stage spans up to it, and the data's
-- sales cycle ends at it.
select account_id, min(started_at) as sold_at
from engagements
group by account_id
