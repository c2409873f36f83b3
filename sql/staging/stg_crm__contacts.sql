-- Grain: one row per CRM contact (a person at an account). Renames and casts only.
-- role: a buying-committee role; any other non-empty value is kept as 'other' (contract).
with source as (
    select * from raw_crm_contacts
),

final as (
    select
        contact_id,
        account_id,
        email,
        case
            when lower(trim(role)) in ('initiator', 'influencer', 'decider', 'buyer', 'user')
                then lower(trim(role))
            when role is not null then 'other'
        end as role,
        title,
        created_at
    from source
)

select * from final
