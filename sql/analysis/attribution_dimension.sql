-- One dimension's paths of a goal, into a temp table ({table}), cut from the goal's
-- journeys ({journeys}): each account's touchpoints that carry a value of "{dimension}"
-- (an account without any has one row with no value); the rarest values are pooled as
-- 'other' ({max_values} kept).
create or replace temp table {table} as
with touches as (
    select account_id, converted, path_end, population, occurred_at, event_order,
           "{dimension}" as value
    from {journeys}
),
top_values as (
    select value from touches where value is not null
    group by value order by count(*) desc, value limit {max_values}
)
select account_id, converted, path_end, population, occurred_at, event_order,
       case when value in (select value from top_values) then value else 'other' end as value
from touches
where value is not null
union all
select account_id, any_value(converted), any_value(path_end), any_value(population),
       null, null, null
from touches
group by account_id
having count(value) = 0
