-- Variants of an event log: one row per distinct path, with its case count, share
-- of cases (coverage), rank and cumulative coverage, so a top-k list always comes
-- with the share of the long tail it leaves out.
with paths as (
    select case_id, string_agg(activity, ' > ' order by event_index) as variant,
           count(*) as length
    from event_log
    group by case_id
),

counted as (
    select variant, any_value(length) as length, count(*) as cases
    from paths
    group by variant
),

final as (
    select
        variant,
        length,
        cases,
        cases / sum(cases) over () as coverage,
        cast(row_number() over (order by cases desc, variant) as integer) as variant_rank
    from counted
)

select
    *,
    sum(coverage) over (order by variant_rank rows unbounded preceding) as cumulative_coverage
from final
order by variant_rank
