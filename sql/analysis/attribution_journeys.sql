-- Attribution journeys for one goal, into the temp table _attribution_journeys: one row
-- per touchpoint of the accounts that could reach $goal (they entered the stage before
-- it on stage_ladder), up to their conversion or the as-of date, with every dimension's
-- value (marketing_channel, source_medium, channel = recording system, campaign = its
-- name where the export gives one, activity = channel:activity); an account without any
-- touchpoint in its window has one row with no event. Above $max_journeys accounts, the
-- same sample every run, in md5 order of the account id (DuckDB and Spark agree on md5,
-- not on hash()); population = all of them. Read once per goal: each dimension's paths
-- are cut from it (attribution_touches.sql).
create or replace temp table _attribution_journeys as
with ladder as (  -- the stage before $goal, by ladder order: no stage number written here
    select stage, lag(stage) over (order by stage_order) as before
    from stage_ladder
),
firsts as (
    select account_id, stage, min(entered_at) as entered_at
    from account_stage_history group by account_id, stage
),
population as (
    select p.account_id, g.entered_at as converted_at,
           coalesce(g.entered_at, (select as_of from run_parameters)) as path_end
    from firsts p
    left join firsts g on g.account_id = p.account_id and g.stage = $goal
        and g.entered_at > p.entered_at
    where p.stage = (select before from ladder where stage = $goal)
),
sampled as (  -- every account up to the cap; above it the same md5-ordered sample each run
    select *, count(*) over () as population
    from population
    order by md5(account_id), account_id
    limit $max_journeys
)
select p.account_id, p.converted_at is not null as converted, p.path_end, p.population,
       e.occurred_at, e.event_order,
       e.channel as channel,
       e.marketing_channel,
       e.source_medium,
       coalesce(e.campaign_name, e.campaign_id) as campaign,
       e.channel || ':' || e.activity as activity
from sampled p
left join int_journey_events e on e.account_id = p.account_id
    and e.occurred_at < p.path_end
