-- What the Markov chains are fitted on, into the temp table _attribution_paths: one row
-- per distinct (path, converted) pair of one dimension's paths (_attribution_touches),
-- a path being the account's value codes (_attribution_codes) in event order, with how
-- many accounts took it. n numbers the paths, most frequent first.
create or replace temp table _attribution_paths as
with paths as (
    select t.account_id, any_value(t.converted) as converted,
           coalesce(list(c.code order by t.event_order) filter (where t.value is not null),
                    []::bigint[]) as path
    from _attribution_touches t left join _attribution_codes c using (value)
    group by t.account_id
),
distinct_paths as (
    select path, converted, count(*) as accounts from paths group by path, converted
)
select row_number() over (order by accounts desc, converted, path) as n, path, converted,
       accounts
from distinct_paths
