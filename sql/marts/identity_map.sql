-- Grain: one row per identifier tied to a contact or an account (contract section 4).
-- identifier_type: contact_id, email or anonymous_id. Identifiers that tie to
-- nothing are not here; int_emails_resolved and int_visitors_resolved keep them.
with contacts as (
    select * from stg_crm__contacts
),

emails as (
    select * from int_emails_resolved
    where account_id is not null
),

visitors as (
    select * from int_visitors_resolved
    where account_id is not null
),

final as (
    select
        'contact_id' as identifier_type,
        contact_id as identifier,
        contact_id,
        account_id,
        'crm_contact' as method,
        created_at as first_seen,
        cast(null as timestamp) as last_seen,
        'CRM contact record' as evidence,
        0 as n_candidate_accounts
    from contacts

    union all

    select
        'email',
        email,
        contact_id,
        account_id,
        method,
        first_seen,
        last_seen,
        evidence,
        1
    from emails

    union all

    select
        'anonymous_id',
        anonymous_id,
        contact_id,
        account_id,
        method,
        first_seen,
        last_seen,
        evidence,
        n_candidate_accounts
    from visitors
)

select * from final
