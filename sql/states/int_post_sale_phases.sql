-- Grain: one row per phase an account entered after a sale, as the engagement rules
-- observe it (no model): client from an engagement's start; between engagements from
-- its end by completion, former client from its end by cancellation; advocacy from the
-- first referral or case study after a completion (before the next engagement and
-- before any cancellation); former client from a cancellation after a completion.
-- Accounts with client-side signals but no engagement (history before the data)
-- follow those signals' stages (method signal).
-- This is the one post-sale rule: account_journeys, advocates and the report read the
-- stays built from it (account_stage_history).
with engagement as (
    select account_id, engagement_no, started_at, ended_at, end_kind
    from engagements
),

cancellations as (
    select account_id, occurred_at
    from int_journey_events
    where activity in (select activity from engagement_rules where role = 'cancel')
),

next_engagement as (
    select e.*, n.started_at as next_start
    from engagement as e
    left join engagement as n
        on e.account_id = n.account_id and n.engagement_no = e.engagement_no + 1
    where e.ended_at is not null and e.end_kind <> 'cancelled'
),

advocacy as (
    -- a former client who refers is still a former client
    select e.account_id, e.engagement_no, min(t.occurred_at) as entered_at
    from next_engagement as e
    inner join int_journey_events as t
        on e.account_id = t.account_id
        and t.stage = 'advocacy'
        and t.occurred_at >= e.ended_at
        and (e.next_start is null or t.occurred_at < e.next_start)
    where not exists (
        select 1 from cancellations as c
        where c.account_id = e.account_id
            and c.occurred_at > e.ended_at and c.occurred_at <= t.occurred_at
    )
    group by all
),

late_cancellation as (
    -- a cancellation after an engagement completed, before the next one: the client left
    select e.account_id, e.engagement_no, min(c.occurred_at) as entered_at
    from next_engagement as e
    inner join cancellations as c
        on e.account_id = c.account_id
        and c.occurred_at > e.ended_at
        and (e.next_start is null or c.occurred_at < e.next_start)
    group by all
),

client_side as (
    select t.account_id, t.occurred_at as entered_at, t.stage
    from int_journey_events as t
    inner join stage_ladder as l on t.stage = l.stage
    where l.phase = 'client'
        and not exists (select 1 from engagement as e where e.account_id = t.account_id)
),

final as (
    select account_id, started_at as entered_at, 'client' as stage, 'engagement' as method
    from engagement
    union all
    select
        account_id,
        ended_at,
        case end_kind when 'cancelled' then 'former_client' else 'between_engagements' end,
        'engagement'
    from engagement
    where ended_at is not null
    union all
    select account_id, entered_at, 'advocacy', 'engagement' from advocacy
    union all
    select account_id, entered_at, 'former_client', 'engagement' from late_cancellation
    union all
    select account_id, entered_at, stage, 'signal' from client_side
)

select * from final
