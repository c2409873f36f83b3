-- materialized: view (read once, by int_touchpoints_staged, which keeps every column)
-- Grain: one row per touchpoint, tied to an account (and a contact where known).
-- CRM rows name their account themselves (crm_record). A web or email touchpoint
-- goes by its own email first (a form fill is the strongest evidence), then by its
-- visitor's form fills. What matches nothing keeps an empty account_id (unresolved).
with touchpoints as (
    select * from int_touchpoints_unioned
),

emails as (
    select * from int_emails_resolved
),

visitors as (
    select * from int_visitors_resolved
),

final as (
    select
        t.*,
        case
            when t.source = 'crm_activities' then t.crm_account_id
            else coalesce(e.account_id, v.account_id)
        end as account_id,
        case
            when t.source = 'crm_activities' then t.crm_contact_id
            when e.account_id is not null then e.contact_id
            else v.contact_id
        end as contact_id,
        case
            when t.source = 'crm_activities' then 'crm_record'
            when e.account_id is not null then e.method
            when v.account_id is not null then v.method
        end as resolution_method
    from touchpoints as t
    left join emails as e on t.email = e.email
    left join visitors as v on t.anonymous_id = v.anonymous_id
)

select * from final
