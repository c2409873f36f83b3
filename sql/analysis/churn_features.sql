-- Churn features and label for the clients at each snapshot date ($as_ofs, a list),
-- all dates in one pass: one row per (client, as_of).
--
-- Activities are roles from engagement_rules (config): start (default deal_won),
-- end (project_completed), cancel (cancellation) and lost (deal_lost, counted as
-- deals_lost); no activity name is written here.
-- $churn_kind 'contractual' (default): the population is accounts whose latest start
-- on or before as_of has no cancel after it up to as_of (a former client who
-- bought again is a client again); label: a cancel in (as_of, as_of + horizon].
-- $churn_kind 'non_contractual' (no cancellation exists, e.g. purchases): every
-- account with a start on or before as_of; label: no new start in that window.
-- Features read touchpoints with occurred_at <= as_of only. The label is NULL when
-- its window is not fully observed yet.
-- Only accounts with a start ever are read, and each touchpoint is joined to the
-- snapshots it can count for (on or before the date; windows of 180 days at most,
-- except the running totals, which come from one aggregate per account and date).
with snapshots as (
    select unnest(cast($as_ofs as timestamp[])) as as_of
),

params as (
    select
        cast($horizon_days as integer) as horizon_days,
        cast($churn_kind as varchar) as churn_kind,
        (select max(occurred_at) from int_touchpoints_staged) as data_end
),

roles as (
    select activity, role from engagement_rules
),

buyers as (  -- accounts with a start ever: the only ones that can be clients
    select distinct t.account_id
    from int_touchpoints_staged as t
    inner join roles as r on t.activity = r.activity and r.role = 'start'
    where t.account_id is not null
),

events as (
    select t.*
    from int_touchpoints_staged as t
    semi join buyers as b on t.account_id = b.account_id
),

milestone_events as (
    select e.account_id, e.occurred_at, e.activity, e.stage, r.role
    from events as e
    left join roles as r on e.activity = r.activity
    where r.role is not null or e.stage = 'advocacy'
),

milestones as (
    select
        s.as_of,
        m.account_id,
        min(m.occurred_at) filter (where m.role = 'start') as first_won_at,
        max(m.occurred_at) filter (where m.role = 'start') as last_won_at,
        max(m.occurred_at) filter (where m.role = 'cancel') as last_cancelled_at,
        max(m.occurred_at) filter (where m.role = 'end') as last_completed_at,
        count(*) filter (where m.role = 'start') as deals_won,
        count(*) filter (where m.role = 'lost') as deals_lost,
        count(*) filter (where m.stage = 'advocacy') as advocacy_signals
    from milestone_events as m
    inner join snapshots as s on m.occurred_at <= s.as_of
    group by s.as_of, m.account_id
),

clients as (
    select m.*
    from milestones as m, params as p
    where m.last_won_at is not null
        and (p.churn_kind = 'non_contractual'
             or m.last_cancelled_at is null or m.last_cancelled_at < m.last_won_at)
),

own as (  -- the account's own touchpoints: staged or negative (not email sends)
    select * from events
    where stage is not null or is_negative
),

last_touch as (
    select s.as_of, o.account_id, max(o.occurred_at) as last_touch_at,
           arg_max(o.score, o.occurred_at) filter (where o.score is not null) as last_nps
    from own as o
    inner join snapshots as s on o.occurred_at <= s.as_of
    group by s.as_of, o.account_id
),

activity as (
    select
        s.as_of,
        o.account_id,
        count(*) filter (where o.occurred_at > s.as_of - interval 90 day) as touches_90d,
        count(*) filter (where o.occurred_at <= s.as_of - interval 90 day) as touches_prev_90d,
        count(*) filter (where o.occurred_at > s.as_of - interval 90 day
                         and o.channel = 'web') as web_90d,
        count(*) filter (where o.occurred_at > s.as_of - interval 90 day
                         and o.channel = 'email') as email_90d,
        count(*) filter (where o.occurred_at > s.as_of - interval 90 day
                         and o.channel = 'crm') as crm_90d,
        count(*) filter (where o.occurred_at > s.as_of - interval 60 day
                         and o.activity = 'support_ticket') as support_tickets_60d,
        count(*) filter (where o.activity = 'support_ticket') as support_tickets_180d,
        count(*) filter (where o.activity = 'nps_response' and o.is_negative)
            as low_nps_180d,
        count(*) filter (where o.activity in ('unsubscribe', 'spam_complaint', 'bounce'))
            as email_negative_180d,
        count(distinct o.contact_id) as contacts_engaged_180d
    from own as o
    inner join snapshots as s
        on o.occurred_at <= s.as_of and o.occurred_at > s.as_of - interval 180 day
    group by s.as_of, o.account_id
),

engagement_marks as (  -- starts, ends and cancels, in time order per account
    select account_id, occurred_at, role
    from milestone_events
    where role in ('start', 'end', 'cancel')
),

project_spans as (  -- from each mark to the next: a span after a start is time in a project
    select
        account_id,
        role,
        occurred_at as started_at,
        lead(occurred_at) over (partition by account_id order by occurred_at) as next_mark_at
    from engagement_marks
),

-- in_project: the latest mark at or before the touchpoint is a start, i.e. the touchpoint
-- falls in a span from a start to the next mark (spans do not overlap). A range join
-- rather than an ASOF join, which Spark has not (sql/README.md, the portable subset).
own_tagged as (
    select o.*, ps.account_id is not null as in_project
    from own as o
    left join project_spans as ps
        on o.account_id = ps.account_id
        and ps.role = 'start'
        and o.occurred_at >= ps.started_at
        and (ps.next_mark_at is null or o.occurred_at < ps.next_mark_at)
),

project_time as (  -- weeks in projects up to each date (an open project runs to the date)
    select
        s.as_of,
        ps.account_id,
        sum(epoch(least(coalesce(ps.next_mark_at, s.as_of), s.as_of)) - epoch(ps.started_at))
        / (7 * 86400.0) as project_weeks
    from project_spans as ps
    inner join snapshots as s on ps.started_at <= s.as_of
    where ps.role = 'start'
    group by s.as_of, ps.account_id
),

lifetime as (  -- rates over the whole relationship so far: a client's usual level
    select
        c.as_of,
        c.account_id,
        count(*) filter (where o.activity = 'support_ticket') as tickets_since_won,
        count(*) filter (where o.activity = 'nps_response' and o.score is not null)
            as nps_replies,
        sum(o.score) filter (where o.activity = 'nps_response') as nps_sum,
        count(*) filter (where o.channel = 'web') as web_since_won,
        count(*) filter (where o.channel = 'email') as email_since_won,
        count(*) filter (where o.in_project and o.activity = 'support_ticket')
            as tickets_in_projects,
        count(*) filter (where o.in_project and o.channel = 'web') as web_in_projects
    from clients as c
    inner join own_tagged as o
        on o.account_id = c.account_id and o.occurred_at <= c.as_of
        and o.occurred_at >= c.first_won_at
    group by c.as_of, c.account_id
),

-- Credibility weighting: a client with a few weeks of history is read as if it had
-- also spent a quarter (13 weeks, one NPS reply) at the average of the clients of
-- that date, so one early ticket does not make it the riskiest client of all.
usual as (
    select
        c.as_of,
        sum(coalesce(lf.tickets_in_projects, 0)) / greatest(sum(pt.project_weeks), 1)
            as tickets_per_week,
        sum(coalesce(lf.web_in_projects, 0)) / greatest(sum(pt.project_weeks), 1)
            as web_per_week,
        sum(lf.nps_sum) / nullif(sum(lf.nps_replies), 0) as nps
    from clients as c
    left join lifetime as lf on c.account_id = lf.account_id and c.as_of = lf.as_of
    left join project_time as pt on c.account_id = pt.account_id and c.as_of = pt.as_of
    group by c.as_of
),

committee_touches as (  -- the first touch of each (account, role): a role counts from then
    select e.account_id, c.role, min(e.occurred_at) as first_at
    from events as e
    inner join stg_crm__contacts as c on e.contact_id = c.contact_id
    where c.role is not null
    group by e.account_id, c.role
),

committee as (
    select s.as_of, ct.account_id, count(*) as roles_engaged
    from committee_touches as ct
    inner join snapshots as s on ct.first_at <= s.as_of
    group by s.as_of, ct.account_id
),

horizon_events as (
    select s.as_of, m.account_id, m.role
    from milestone_events as m, snapshots as s, params as p
    where m.role is not null
        and m.occurred_at > s.as_of
        and m.occurred_at <= s.as_of + to_days(p.horizon_days)
),

labels as (  -- the (account, date) pairs that churned within the horizon
    select c.as_of, c.account_id
    from clients as c, params as p
    where case p.churn_kind
        when 'non_contractual' then not exists (
            select 1 from horizon_events as h
            where h.account_id = c.account_id and h.as_of = c.as_of and h.role = 'start')
        else exists (
            select 1 from horizon_events as h
            where h.account_id = c.account_id and h.as_of = c.as_of and h.role = 'cancel')
    end
),

final as (
    select
        c.account_id,
        c.as_of,
        (epoch(c.as_of) - epoch(c.first_won_at)) / 86400.0 as tenure_days,
        (epoch(c.as_of) - epoch(c.last_won_at)) / 86400.0 as days_since_deal_won,
        c.deals_won,
        c.deals_lost,
        c.advocacy_signals,
        coalesce(c.last_completed_at, c.last_won_at) <= c.last_won_at as in_open_engagement,
        case when c.last_completed_at > c.last_won_at
            then (epoch(c.as_of) - epoch(c.last_completed_at)) / 86400.0
            else 0 end as days_since_engagement_end,
        (epoch(c.as_of) - epoch(coalesce(lt.last_touch_at, c.last_won_at))) / 86400.0
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
        lt.last_nps,
        coalesce(a.email_negative_180d, 0) as email_negative_180d,
        coalesce(a.contacts_engaged_180d, 0) as contacts_engaged_180d,
        coalesce(r.roles_engaged, 0) as roles_engaged,
        coalesce(lf.tickets_since_won, 0) * 365.0
        / greatest((epoch(c.as_of) - epoch(c.first_won_at)) / 86400.0, 90)
            as tickets_per_year,
        lf.nps_sum / nullif(lf.nps_replies, 0) as mean_nps,
        coalesce(lf.web_since_won, 0) * 30.0
        / greatest((epoch(c.as_of) - epoch(c.first_won_at)) / 86400.0, 90)
            as web_visits_per_month,
        coalesce(lf.email_since_won, 0) * 30.0
        / greatest((epoch(c.as_of) - epoch(c.first_won_at)) / 86400.0, 90)
            as email_interactions_per_month,
        coalesce(pt.project_weeks, 0) as project_weeks,
        52.0 * (coalesce(lf.tickets_in_projects, 0) + 13 * u.tickets_per_week)
        / (coalesce(pt.project_weeks, 0) + 13) as tickets_per_project_year,
        52.0 * (coalesce(lf.web_in_projects, 0) + 13 * u.web_per_week)
        / (coalesce(pt.project_weeks, 0) + 13) as web_visits_per_project_year,
        (coalesce(lf.nps_sum, 0) + u.nps) / (coalesce(lf.nps_replies, 0) + 1) as weighted_nps,
        acc.employees,
        coalesce(acc.industry, 'unknown') as industry,
        case
            when c.as_of + to_days(p.horizon_days) > p.data_end then null
            else l.account_id is not null
        end as label
    from clients as c
    cross join params as p
    left join last_touch as lt on c.account_id = lt.account_id and c.as_of = lt.as_of
    left join activity as a on c.account_id = a.account_id and c.as_of = a.as_of
    left join committee as r on c.account_id = r.account_id and c.as_of = r.as_of
    left join lifetime as lf on c.account_id = lf.account_id and c.as_of = lf.as_of
    left join project_time as pt on c.account_id = pt.account_id and c.as_of = pt.as_of
    left join usual as u on c.as_of = u.as_of
    left join stg_crm__accounts as acc on c.account_id = acc.account_id
    left join labels as l on c.account_id = l.account_id and c.as_of = l.as_of
)

select * from final
order by as_of desc, account_id
