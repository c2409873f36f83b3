-- Grain: one row: the analysis parameters this build used, bound by the runner.
-- as_of: the given date, else the latest occurred_at in the warehouse (contract section 3),
-- but never later than the build time: a future timestamp loaded before ingest rejected
-- them must not age every journey.
with touchpoints as (
    select occurred_at from int_touchpoints_unioned
),

final as (
    select
        coalesce(
            cast($as_of as timestamp),
            least(
                (select max(occurred_at) from touchpoints),
                current_timestamp::timestamp
            )
        ) as as_of,
        cast($dormancy_days as integer) as dormancy_days,
        cast($churn_horizon_days as integer) as churn_horizon_days,
        cast($inactivity_days as integer) as inactivity_days,
        cast($instant as boolean) as instant_engagements,
        cast($churn_kind as varchar) as churn_kind,
        current_timestamp::timestamp as built_at
)

select * from final
