-- Attribution journeys for one goal, into a temp table ({table}): the touchpoints of the
-- accounts that could reach $goal (they entered $before), up to their conversion or the
-- as-of date, with one column per dimension ({dimensions}); an account without any
-- touchpoint in its window has one row with no event. Above $max_journeys accounts,
-- the same hash-ordered sample every run; population = all of them. Read once per goal:
-- each dimension's path table is cut from it (attribution_dimension.sql).
create or replace temp table {table} as
with firsts as (
    select account_id, stage, min(entered_at) as entered_at
    from account_stage_history group by account_id, stage
),
population as (
    select p.account_id, g.entered_at as converted_at,
           coalesce(g.entered_at, (select as_of from run_parameters)) as path_end
    from firsts p
    left join firsts g on g.account_id = p.account_id and g.stage = $goal
        and g.entered_at > p.entered_at
    where p.stage = $before
),
sampled as (  -- every account up to the cap; above it the same hash-ordered sample each run
    select *, count(*) over () as population
    from population
    order by hash(account_id), account_id
    limit $max_journeys
)
select p.account_id, p.converted_at is not null as converted, p.path_end, p.population,
       e.occurred_at, e.event_order, {dimensions}
from sampled p
left join int_journey_events e on e.account_id = p.account_id
    and e.occurred_at < p.path_end
