-- Rule-based credits: one row per (converting account, value) of one dimension's paths
-- (the temp table _attribution_touches), with the credit of each rule (each account's
-- credits sum to one per rule). Order within an account: event_order. Time decay:
-- half-life $half_life days before the conversion.
-- account_index and value_index number the sorted accounts and values from 0: the cells
-- of the (accounts x values) credit matrix, with no string sorting in Python.
with ranked as (
    select account_id, value,
           row_number() over (partition by account_id order by event_order) - 1 as i,
           count(*) over (partition by account_id) as n,
           pow(0.5, (epoch(path_end) - epoch(occurred_at)) / 86400.0 / $half_life) as decay
    from _attribution_touches
    where converted and value is not null
),
weights as (
    select account_id, value,
           (i = 0)::double as first_touch,
           (i = n - 1)::double as last_touch,
           1.0 / n as linear,
           case when n <= 2 then 1.0 / n
                when i = 0 or i = n - 1 then 0.4
                else 0.2 / (n - 2) end as position_based,
           decay / sum(decay) over (partition by account_id) as time_decay
    from ranked
)
select account_id, value,
       dense_rank() over (order by account_id) - 1 as account_index,
       dense_rank() over (order by value) - 1 as value_index,
       sum(first_touch) as first_touch, sum(last_touch) as last_touch,
       sum(linear) as linear, sum(position_based) as position_based,
       sum(time_decay) as time_decay
from weights
group by account_id, value
order by account_id, value
