-- materialized: view (read by four models; each reads only the columns it needs)
-- Grain: one row per touchpoint from any source, before identity stitching.
-- channel is the system that recorded the touchpoint: web, email or crm (sales and service).
-- The identifiers each source carries are kept for stitching: CRM rows name their
-- account and contact, web rows an anonymous_id (and an email on a form fill),
-- email rows an email address. source_file and source_row say where the row was first
-- loaded from: events with the same time keep that order (contract v2, event order).
with crm_activities as (
    select * from stg_crm__activities
),

web_events as (
    select * from stg_web__events
),

email_events as (
    select * from stg_email__events
),

unioned as (
    select
        'crm_activities' as source,
        activity_id as source_id,
        occurred_at,
        'crm' as channel,
        activity,
        account_id as crm_account_id,
        contact_id as crm_contact_id,
        null::varchar as anonymous_id,
        null::varchar as email,
        opportunity_id,
        amount,
        properties,
        null::varchar as campaign_id,
        null::varchar as url,
        source_file,
        source_row
    from crm_activities

    union all

    select
        'web_events',
        event_id,
        occurred_at,
        'web',
        activity,
        null,
        null,
        anonymous_id,
        email,
        null,
        null,
        null,
        utm_campaign,
        page_url,
        source_file,
        source_row
    from web_events

    union all

    select
        'email_events',
        event_id,
        occurred_at,
        'email',
        activity,
        null,
        null,
        null,
        email,
        null,
        null,
        null,
        campaign_id,
        url,
        source_file,
        source_row
    from email_events
),

final as (
    select
        source || ':' || source_id as touchpoint_id,
        *
    from unioned
)

select * from final
