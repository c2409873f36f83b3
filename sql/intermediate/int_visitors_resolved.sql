-- Grain: one row per anonymous_id (a website visitor's browser).
--
-- A visitor is tied to the account (and contact) of the email it submitted in a
-- form fill; all its events, before and after the fill, then join that journey.
-- Conflict rule: a visitor that submitted emails of several accounts (a shared
-- computer, an agency) goes to the account it submitted most often, ties to the
-- earliest submission; n_candidate_accounts > 1 marks and counts these.
with web as (
    select * from int_touchpoints_unioned
    where source = 'web_events'
),

visitors as (
    select anonymous_id, min(occurred_at) as first_seen, max(occurred_at) as last_seen
    from web
    group by anonymous_id
),

form_fills as (
    select
        w.anonymous_id,
        w.occurred_at,
        w.email,
        w.touchpoint_id,
        e.account_id,
        e.contact_id,
        e.method as email_method
    from web as w
    inner join int_emails_resolved as e on w.email = e.email
    where e.account_id is not null
),

candidates as (
    select
        anonymous_id,
        account_id,
        count(*) as n_fills,
        min(occurred_at) as first_fill_at,
        arg_max(contact_id, occurred_at) filter (where contact_id is not null) as contact_id,
        arg_min(email, occurred_at) as first_email,
        arg_min(email_method, occurred_at) as first_email_method,
        arg_min(touchpoint_id, occurred_at) as first_fill_touchpoint
    from form_fills
    group by anonymous_id, account_id
),

ranked as (
    select
        *,
        row_number() over (
            partition by anonymous_id order by n_fills desc, first_fill_at, account_id
        ) as candidate_rank,
        count(*) over (partition by anonymous_id) as n_candidate_accounts
    from candidates
),

final as (
    select
        v.anonymous_id,
        v.first_seen,
        v.last_seen,
        r.account_id,
        r.contact_id,
        case when r.account_id is not null then 'form_fill' end as method,
        case
            when r.account_id is null then 'no form fill with a resolvable email'
            else 'form fill ' || r.first_fill_touchpoint || ' of ' || r.first_email
                || ' (' || r.first_email_method || ')'
                || case
                    when r.n_candidate_accounts > 1
                        then '; submitted emails of ' || r.n_candidate_accounts
                            || ' accounts, chose the most frequent'
                    else ''
                end
        end as evidence,
        coalesce(r.n_candidate_accounts, 0) as n_candidate_accounts
    from visitors as v
    left join ranked as r
        on v.anonymous_id = r.anonymous_id and r.candidate_rank = 1
)

select * from final
