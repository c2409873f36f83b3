-- The funnel as `journey run` prints it: one row per ladder stage. reached, conversion
-- and dropped are the funnel's (stage_funnel) up to the first client stage; after it the
-- ladder is no funnel (former_client's rank is not "further" than advocacy), so they are
-- null there. ever_in and now: accounts whose inferred stage was or is this one
-- (stage_occupancy, from account_stage_history).
with first_client as (
    select min(stage_order) as stage_order
    from stage_ladder
    where phase = 'client'
)

select
    f.stage,
    case when f.stage_order <= c.stage_order then f.reached end as reached,
    f.conversion_to_next,
    case when f.stage_order <= c.stage_order then f.dropped end as dropped,
    o.accounts_ever_in as ever_in,
    o.accounts_in_now as now
from stage_funnel as f
inner join stage_occupancy as o on f.stage = o.stage
cross join first_client as c
order by f.stage_order
