-- materialized: view (read by four models; each reads only the columns it needs)
-- Grain: one row per touchpoint from any source, before identity stitching.
-- channel is the system that recorded the touchpoint: web, email or crm (sales and service).
-- The identifiers each source carries are kept for stitching: CRM rows name their
-- account and contact, web rows an anonymous_id (and an email on a form fill),
-- email rows an email address. source_file and source_row say where the row was first
-- loaded from: events with the same time keep that order (contract v2, event order).
-- load_id: the load that brought the row (raw tables only grow), which is how an
-- incremental build finds the rows that are new since the last one.
-- What marketing channels are read from (contract v3): the web event's UTM parameters
-- (from the page URL's query where the export has no UTM columns or leaves them empty)
-- and referrer, referrer_host (the referring site without www., empty when the visitor
-- came from the site itself: the page's host, a subdomain of it or it of the referrer,
-- or one of marketing_own_domains), and the email campaign's name.
with crm_activities as (
    select * from stg_crm__activities
),

web_events as (
    select
        event_id,
        occurred_at,
        anonymous_id,
        activity,
        email,
        page_url,
        referrer,
        coalesce(nullif(trim(utm_source), ''), url_decode(nullif(regexp_extract(
            page_url, '[?&]utm_source=([^&#]*)', 1), ''))) as utm_source,
        coalesce(nullif(trim(utm_medium), ''), url_decode(nullif(regexp_extract(
            page_url, '[?&]utm_medium=([^&#]*)', 1), ''))) as utm_medium,
        coalesce(nullif(trim(utm_campaign), ''), url_decode(nullif(regexp_extract(
            page_url, '[?&]utm_campaign=([^&#]*)', 1), ''))) as utm_campaign,
        source_file,
        source_row,
        load_id,
        regexp_extract(lower(trim(referrer)),
                       '^(?:[a-z][a-z0-9+.-]*://)?(?:www\.)?([^/:?#\s]+)', 1) as _referrer,
        regexp_extract(lower(trim(page_url)),
                       '^(?:[a-z][a-z0-9+.-]*://)?(?:www\.)?([^/:?#\s]+)', 1) as _page
    from stg_web__events
),

web_referrers as (
    select
        w.*,
        case
            when w._referrer = '' then null
            when w._referrer = w._page
                or w._referrer like '%.' || w._page
                or (w._page <> '' and w._page like '%.' || w._referrer)
                or exists (
                    select 1 from marketing_own_domains as d
                    where w._referrer = d.domain or w._referrer like '%.' || d.domain
                )
                then null
            else w._referrer
        end as _referrer_host
    from web_events as w
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
        source_row,
        load_id
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
        _referrer_host,
        null,
        source_file,
        source_row,
        load_id
    from web_referrers

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
        source_row,
        load_id
    from email_events
),

final as (
    select
        source || ':' || source_id as touchpoint_id,
        *,
        -- the combination of what marketing channel rules read (int_marketing_channels)
        concat_ws(chr(31), channel, activity, coalesce(utm_source, ''),
                  coalesce(utm_medium, ''), coalesce(utm_campaign, ''),
                  coalesce(referrer_host, ''), coalesce(campaign_name, campaign_id, ''))
            as channel_key
    from unioned
)

select * from final
