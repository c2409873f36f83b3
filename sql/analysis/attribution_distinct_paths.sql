-- Distinct (path, converted) pairs of {table}, with how many accounts took each, into a
-- temp table ({paths}): what the Markov chains are fitted on. Values are integer codes
-- (their rank, from 1, in {codes}), so a path is a list of integers and reaches Python
-- as flat arrays, not as lists of strings. n numbers the paths, most frequent first.
create or replace temp table {codes} as
select value, row_number() over (order by value) as code
from (select distinct value from {table} where value is not null);

create or replace temp table {paths} as
with paths as (
    select t.account_id, any_value(t.converted) as converted,
           coalesce(list(c.code order by t.event_order) filter (where t.value is not null),
                    []::bigint[]) as path
    from {table} t left join {codes} c using (value)
    group by t.account_id
),
distinct_paths as (
    select path, converted, count(*) as accounts from paths group by path, converted
)
select row_number() over (order by accounts desc, converted, path) as n, path, converted,
       accounts
from distinct_paths;
