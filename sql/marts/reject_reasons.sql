-- Grain: one row per (source, reason): rejected input rows of every load, by the
-- first part of their reason (before ':'), most frequent first.
with rejected as (
    select * from rejected_rows
),

final as (
    select source, split_part(reason, ':', 1) as reason, count(*) as rows
    from rejected
    group by all
)

select * from final
order by rows desc, source, reason
