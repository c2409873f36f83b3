-- Grain: one row per canonical touchpoint (contract section 4). Unique key: touchpoint_id.
-- Tests: touchpoint_id unique and not null; (source, source_id) unique.
with touchpoints as (
    select * from int_touchpoints_unioned
),

final as (
    select
        touchpoint_id,
        source,
        source_id,
        occurred_at,
        crm_account_id as account_id,
        crm_contact_id as contact_id,
        anonymous_id,
        channel,
        activity,
        null::varchar as stage,
        false as is_negative,
        email,
        opportunity_id,
        amount,
        properties,
        campaign_id,
        url
    from touchpoints
)

select * from final
