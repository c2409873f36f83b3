-- materialized: view (read by four models; each reads only the columns it needs)
-- Grain: one row per touchpoint from any source, before identity stitching.
-- channel is the system that recorded the touchpoint: web, email or crm (sales and service).
-- The identifiers each source carries are kept for stitching: CRM rows name their
-- account and contact, web rows an anonymous_id (and an email on a form fill),
-- email rows an email address. source_file and source_row say where the row was first
-- loaded from: events with the same time keep that order (contract v2, event order).
-- What marketing channels are read from (contract v3): the web event's UTM parameters
-- and referrer, referrer_host (the referring site without www., empty when the visitor
-- came from the site itself), and the email campaign's name.
with crm_activities as (
    select * from stg_crm__activities
),

web_events as (
    select
        *,
        regexp_extract(lower(trim(referrer)),
                       '^(?:[a-z][a-z0-9+.-]*://)?(?:www\.)?([^/:?#\s]+)', 1) as _referrer,
        regexp_extract(lower(trim(page_url)),
                       '^(?:[a-z][a-z0-9+.-]*://)?(?:www\.)?([^/:?#\s]+)', 1) as _page
    from stg_web__events
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
        null::varchar as utm_source,
        null::varchar as utm_medium,
        null::varchar as utm_campaign,
        null::varchar as referrer,
        null::varchar as referrer_host,
        null::varchar as campaign_name,
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
        utm_source,
        utm_medium,
        utm_campaign,
        referrer,
        case when _referrer <> '' and _referrer is distinct from _page then _referrer end,
        null,
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
        null,
        null,
        null,
        null,
        null,
        campaign_name,
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
