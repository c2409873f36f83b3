-- materialized: view (read once, or a plain projection: no copy is written)
-- Grain: one row per email-platform event. Renames and casts only.
with source as (
    select * from raw_email_events
),

final as (
    select
        event_id,
        occurred_at,
        email,
        regexp_replace(lower(trim(event_type)), '[\s-]+', '_', 'g') as activity,
        campaign_id,
        campaign_name,
        url,
        _file as source_file,
        _row_number as source_row,
        _load_id as load_id
    from source
)

select * from final
