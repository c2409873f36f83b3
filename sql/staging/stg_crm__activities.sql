-- materialized: view (read once, or a plain projection: no copy is written)
-- Grain: one row per CRM activity. Renames and casts only.
-- activity: activity_type lower-cased, spaces and hyphens to underscores ("Deal Won" -> deal_won).
with source as (
    select * from raw_crm_activities
),

final as (
    select
        activity_id,
        occurred_at,
        account_id,
        contact_id,
        opportunity_id,
        regexp_replace(lower(trim(activity_type)), '[\s-]+', '_', 'g') as activity,
        try_cast(amount as double) as amount,
        try_cast(properties as json) as properties,
        _file as source_file,
        _row_number as source_row,
        _load_id as load_id
    from source
)

select * from final
