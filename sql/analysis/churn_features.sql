-- Churn features and label for the clients at one as-of date ($as_of).
--
-- Activities are roles from engagement_rules (config): start (default deal_won),
-- end (project_completed) and cancel (cancellation).
-- $churn_kind 'contractual' (default): the population is accounts whose latest start
-- on or before $as_of has no cancel after it up to $as_of (a former client who
-- bought again is a client again); label: a cancel in ($as_of, $as_of + horizon].
-- $churn_kind 'non_contractual' (no cancellation exists, e.g. purchases): every
-- account with a start on or before $as_of; label: no new start in that window.
-- Features read touchpoints with occurred_at <= $as_of only. The label is NULL when
-- its window is not fully observed yet.
with params as (
    select
        cast($as_of as timestamp) as as_of,
        cast($horizon_days as integer) as horizon_days,
        cast($churn_kind as varchar) as churn_kind,
        (select max(occurred_at) from int_touchpoints_staged) as data_end
),

roles as (
    select activity, role from engagement_rules
),

touchpoints as (
    select t.*
    from int_touchpoints_staged as t, params as p
    where t.account_id is not null and t.occurred_at <= p.as_of
),

own as (  -- the account's own touchpoints: staged or negative (not email sends)
    select * from touchpoints
    where stage is not null or is_negative
),

milestones as (
    select
        t.account_id,
        min(t.occurred_at) filter (where r.role = 'start') as first_won_at,
        max(t.occurred_at) filter (where r.role = 'start') as last_won_at,
        max(t.occurred_at) filter (where r.role = 'cancel') as last_cancelled_at,
        max(t.occurred_at) filter (where r.role = 'end') as last_completed_at,
        count(*) filter (where r.role = 'start') as deals_won,
        count(*) filter (where t.activity = 'deal_lost') as deals_lost,
        count(*) filter (where t.stage = 'advocacy') as advocacy_signals
    from touchpoints as t
    left join roles as r on t.activity = r.activity
    group by t.account_id
),

clients as (
    select m.*
    from milestones as m, params as p
    where m.last_won_at is not null
        and (p.churn_kind = 'non_contractual'
             or m.last_cancelled_at is null or m.last_cancelled_at < m.last_won_at)
),

activity as (
    select
        o.account_id,
        max(o.occurred_at) as last_touch_at,
        count(*) filter (where o.occurred_at > p.as_of - interval 90 day) as touches_90d,
        count(*) filter (where o.occurred_at > p.as_of - interval 180 day
                         and o.occurred_at <= p.as_of - interval 90 day) as touches_prev_90d,
        count(*) filter (where o.occurred_at > p.as_of - interval 90 day
                         and o.channel = 'web') as web_90d,
        count(*) filter (where o.occurred_at > p.as_of - interval 90 day
                         and o.channel = 'email') as email_90d,
        count(*) filter (where o.occurred_at > p.as_of - interval 90 day
                         and o.channel = 'crm') as crm_90d,
        count(*) filter (where o.occurred_at > p.as_of - interval 60 day
                         and o.activity = 'support_ticket') as support_tickets_60d,
        count(*) filter (where o.occurred_at > p.as_of - interval 180 day
                         and o.activity = 'support_ticket') as support_tickets_180d,
        count(*) filter (where o.occurred_at > p.as_of - interval 180 day
                         and o.activity = 'nps_response' and o.is_negative) as low_nps_180d,
        arg_max(o.score, o.occurred_at) filter (where o.score is not null) as last_nps,
        count(*) filter (where o.occurred_at > p.as_of - interval 180 day
                         and o.activity in ('unsubscribe', 'spam_complaint', 'bounce'))
            as email_negative_180d,
        count(distinct o.contact_id) filter (where o.occurred_at > p.as_of - interval 180 day)
            as contacts_engaged_180d
    from own as o, params as p
    group by o.account_id
),

committee as (
    select t.account_id, count(distinct c.role) as roles_engaged
    from touchpoints as t
    inner join stg_crm__contacts as c on t.contact_id = c.contact_id
    where c.role is not null
    group by t.account_id
),

horizon_events as (
    select t.account_id, r.role
    from int_touchpoints_staged as t
    inner join roles as r on t.activity = r.activity, params as p
    where t.occurred_at > p.as_of
        and t.occurred_at <= p.as_of + to_days(p.horizon_days)
),

labels as (  -- the accounts that churned within the horizon
    select c.account_id
    from clients as c, params as p
    where case p.churn_kind
        when 'non_contractual' then not exists (
            select 1 from horizon_events as h
            where h.account_id = c.account_id and h.role = 'start')
        else exists (
            select 1 from horizon_events as h
            where h.account_id = c.account_id and h.role = 'cancel')
    end
),

final as (
    select
        c.account_id,
        p.as_of,
        (epoch(p.as_of) - epoch(c.first_won_at)) / 86400.0 as tenure_days,
        (epoch(p.as_of) - epoch(c.last_won_at)) / 86400.0 as days_since_deal_won,
        c.deals_won,
        c.deals_lost,
        c.advocacy_signals,
        coalesce(c.last_completed_at, c.last_won_at) <= c.last_won_at as in_open_engagement,
        case when c.last_completed_at > c.last_won_at
            then (epoch(p.as_of) - epoch(c.last_completed_at)) / 86400.0
            else 0 end as days_since_engagement_end,
        (epoch(p.as_of) - epoch(coalesce(a.last_touch_at, c.last_won_at))) / 86400.0
            as days_since_last_touch,
        coalesce(a.touches_90d, 0) as touches_90d,
        coalesce(a.touches_prev_90d, 0) as touches_prev_90d,
        coalesce(a.touches_90d, 0) - coalesce(a.touches_prev_90d, 0) as touch_trend,
        coalesce(a.web_90d, 0) as web_90d,
        coalesce(a.email_90d, 0) as email_90d,
        coalesce(a.crm_90d, 0) as crm_90d,
        coalesce(a.support_tickets_60d, 0) as support_tickets_60d,
        coalesce(a.support_tickets_180d, 0) as support_tickets_180d,
        coalesce(a.low_nps_180d, 0) as low_nps_180d,
        a.last_nps,
        coalesce(a.email_negative_180d, 0) as email_negative_180d,
        coalesce(a.contacts_engaged_180d, 0) as contacts_engaged_180d,
        coalesce(r.roles_engaged, 0) as roles_engaged,
        acc.employees,
        coalesce(acc.industry, 'unknown') as industry,
        case
            when p.as_of + to_days(p.horizon_days) > p.data_end then null
            else l.account_id is not null
        end as label
    from clients as c
    cross join params as p
    left join activity as a on c.account_id = a.account_id
    left join committee as r on c.account_id = r.account_id
    left join stg_crm__accounts as acc on c.account_id = acc.account_id
    left join labels as l on c.account_id = l.account_id
)

select * from final
order by account_id
