-- Grain: one row per source and resolution method: how many touchpoints each
-- stitching rule tied to an account, and the share of the source's touchpoints.
with touchpoints as (
    select * from int_touchpoints_staged
),

final as (
    select
        source,
        coalesce(resolution_method, 'unresolved') as method,
        count(*) as touchpoints,
        count(*) / sum(count(*)) over (partition by source) as share_of_source
    from touchpoints
    group by source, coalesce(resolution_method, 'unresolved')
)

select * from final
order by source, method
