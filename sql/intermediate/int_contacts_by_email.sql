-- Grain: one row per contact email address.
-- Several CRM contacts with one email (duplicate records): the earliest created
-- (then the lowest contact_id) stands for the address; n_contacts counts them.
with contacts as (
    select * from stg_crm__contacts
    where email is not null
),

ranked as (
    select
        email,
        contact_id,
        account_id,
        row_number() over (
            partition by email order by created_at nulls last, contact_id
        ) as rank_in_email,
        count(*) over (partition by email) as n_contacts
    from contacts
),

final as (
    select email, contact_id, account_id, n_contacts
    from ranked
    where rank_in_email = 1
)

select * from final
