-- Grain: one row per CRM account. Renames and casts only.
-- domain is lower-cased and stripped of scheme, "www." and path so it compares to email domains.
with source as (
    select * from raw_crm_accounts
),

final as (
    select
        account_id,
        name as account_name,
        nullif(
            regexp_replace(lower(domain), '^([a-z]+://)?(www\.)?([^/:?#]+).*$', '\3'), ''
        ) as domain,
        industry,
        try_cast(employees as integer) as employees,
        country,
        created_at
    from source
)

select * from final
