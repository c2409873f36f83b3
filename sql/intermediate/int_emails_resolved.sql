-- Grain: one row per email address seen anywhere (contacts, web form fills, email events).
--
-- Rules (contract section 3), in order:
--   1. the email of a CRM contact      -> that contact and its account   (contact_email)
--   2. a free-mail domain              -> never matched by domain         (unresolved)
--   3. the domain of exactly one account -> that account, no contact      (email_domain)
--   4. a domain shared by several accounts -> ambiguous, not matched      (unresolved)
with touch_emails as (
    select email, occurred_at from int_touchpoints_unioned
    where email is not null
),

contact_emails as (
    select email, created_at as occurred_at from stg_crm__contacts
    where email is not null
),

emails as (
    select
        email,
        regexp_extract(email, '@([^@]+)$', 1) as email_domain,
        min(occurred_at) as first_seen,
        max(occurred_at) as last_seen
    from (select * from touch_emails union all select * from contact_emails)
    group by email
),

contacts as (
    select * from int_contacts_by_email
),

domains as (
    select domain, min(account_id) as account_id, count(*) as n_accounts
    from stg_crm__accounts
    where domain is not null
    group by domain
),

free_mail as (
    select domain from free_mail_domains
),

final as (
    select
        e.email,
        e.email_domain,
        e.first_seen,
        e.last_seen,
        c.contact_id,
        case
            when c.contact_id is not null then c.account_id
            when f.domain is null and d.n_accounts = 1 then d.account_id
        end as account_id,
        case
            when c.contact_id is not null then 'contact_email'
            when f.domain is null and d.n_accounts = 1 then 'email_domain'
        end as method,
        case
            when c.contact_id is not null and c.n_contacts > 1
                then 'email of CRM contact ' || c.contact_id || ' (one of '
                    || c.n_contacts || ' contacts with this email)'
            when c.contact_id is not null then 'email of CRM contact ' || c.contact_id
            when f.domain is not null then 'free-mail domain: never matched by domain'
            when d.n_accounts > 1
                then 'domain shared by ' || d.n_accounts || ' accounts: not matched'
            when d.n_accounts = 1 then 'domain ' || e.email_domain || ' of account ' || d.account_id
            else 'no CRM contact, no account with this domain'
        end as evidence,
        coalesce(c.n_contacts, 0) > 1 as is_shared_contact_email,
        coalesce(d.n_accounts, 0) > 1 and f.domain is null and c.contact_id is null
            as is_ambiguous_domain
    from emails as e
    left join contacts as c on e.email = c.email
    left join free_mail as f on e.email_domain = f.domain
    left join domains as d on e.email_domain = d.domain
)

select * from final
