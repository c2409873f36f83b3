-- One dimension's paths of a goal, into the temp table _attribution_touches, cut from
-- the goal's journeys (_attribution_journeys): one row per touchpoint of each account
-- that carries a value of $dimension (marketing_channel, source_medium, channel,
-- campaign or activity; the column is
-- chosen by the bound name, not formatted in), in event order; an account without any
-- has one row with no value. Values beyond the $max_values most frequent are pooled as
-- 'other'.
create or replace temp table _attribution_touches as
with touches as (
    select account_id, converted, path_end, population, occurred_at, event_order,
           case $dimension
               when 'marketing_channel' then marketing_channel
               when 'source_medium' then source_medium
               when 'channel' then channel
               when 'campaign' then campaign
               when 'activity' then activity
           end as value
    from _attribution_journeys
),
top_values as (
    select value from touches where value is not null
    group by value order by count(*) desc, value limit $max_values
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
