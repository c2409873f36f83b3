-- Conversion drivers, one funnel step's population: one row per account that entered
-- $from_stage (inferred states, account_stage_history), with when it entered, when it
-- first entered any later stage of the ladder (converted_at, empty when it has not) and
-- the end of the window its touchpoints count in (the conversion, or the as-of date).
-- "Later" is read from stage_ladder by the stage's name: no stage number is written here.
with firsts as (
    select account_id, stage, min(entered_at) as entered_at
    from account_stage_history group by account_id, stage
),
entered as (
    select f.account_id, f.entered_at,
           (select min(g.entered_at) from firsts g
            where g.account_id = f.account_id and g.entered_at > f.entered_at
              and g.stage in (select stage from stage_ladder where stage_order >
                              (select stage_order from stage_ladder where stage = $from_stage)))
               as converted_at
    from firsts f where f.stage = $from_stage
)
select account_id, entered_at, converted_at, converted_at is not null as converted,
       coalesce(converted_at, (select as_of from run_parameters)) as window_end
from entered
