-- materialized: view (read once, or a plain projection: no copy is written)
-- Grain: one row per canonical touchpoint (contract section 4), all of them,
-- whatever the as-of date. account_id is empty where stitching found no account.
-- channel is the recording system (web, email, crm); marketing_channel the channel
-- group a marketer reads (int_marketing_channels); campaign the campaign's name where
-- an export gives one (email campaign_name, web utm_campaign), else its id.
with touchpoints as (
    select * from int_touchpoints_staged
),

final as (
    select
        touchpoint_id,
        source,
        source_id,
        occurred_at,
        account_id,
        contact_id,
        anonymous_id,
        channel,
        activity,
        stage,
        is_negative,
        stage_order,
        resolution_method,
        email,
        opportunity_id,
        amount,
        score,
        properties,
        campaign_id,
        url,
        marketing_channel,
        source_medium,
        utm_source,
        utm_medium,
        utm_campaign,
        referrer,
        campaign_name,
        coalesce(campaign_name, campaign_id) as campaign
    from touchpoints
)

select * from final
