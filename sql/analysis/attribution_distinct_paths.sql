-- Distinct (path, converted) pairs of {table}, with how many accounts took each:
-- what the Markov chains are fitted on.
with paths as (
    select account_id, any_value(converted) as converted,
           coalesce(list(value order by event_order) filter (where value is not null),
                    []::varchar[]) as path
    from {table}
    group by account_id
)
select path, converted, count(*) as accounts
from paths
group by path, converted
order by accounts desc, converted, path
