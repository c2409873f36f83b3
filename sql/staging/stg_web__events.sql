-- materialized: view (read once, or a plain projection: no copy is written)
-- Grain: one row per website event. Renames and casts only.
with source as (
    select * from raw_web_events
),

final as (
    select
        event_id,
        occurred_at,
        anonymous_id,
        regexp_replace(lower(trim(event_name)), '[\s-]+', '_', 'g') as activity,
        email,
        page_url,
        referrer,
        utm_source,
        utm_medium,
        utm_campaign,
        _file as source_file,
        _row_number as source_row,
        _load_id as load_id
    from source
)

select * from final
