-- Representative journeys' input: one row per distinct path of an event log (read as
-- the view event_log: the stored stage_log or activity_log), the path being a case's
-- activities in event order joined by ' > ', with how many accounts took it and how
-- many of those became clients (account_journeys). Most taken first, then by path, so
-- the clustering sees the same order every run.
with paths as (
    select case_id as account_id, string_agg(activity, ' > ' order by event_index) as path
    from event_log group by case_id
)
select p.path, count(*) as accounts,
       count(*) filter (where j.became_client) as became_client
from paths p left join account_journeys j using (account_id)
group by p.path
order by accounts desc, p.path
