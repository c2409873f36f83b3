-- Per kind of touchpoint (channel:activity): in how many ended-engagement gaps it
-- occurred, and how many of those gaps ended with the account coming back.
-- The gap window is (ended_at, next engagement start), capped at $window_days after
-- the end, so gaps that never closed are not favoured by a longer window.
-- defines_return: the activity is part of the return itself, not a lever: the sales
-- steps of a new deal (CRM activities signalling evaluation or decision) and the start
-- of the next engagement (engagement_rules role start). Charts leave these out.
with gaps as (
    select * from reengagement_gaps
),

events as (
    select
        e.account_id,
        e.occurred_at,
        e.channel || ':' || e.activity as touchpoint,
        -- an activity the stage map does not know has no stage: not a sales step
        coalesce(e.channel = 'crm' and e.stage in ('evaluation', 'decision'), false)
        or coalesce(e.activity in (select activity from engagement_rules where role = 'start'),
                    false)
            as defines_return
    from int_journey_events as e
),

in_gap as (
    select distinct g.account_id, g.engagement_no, g.returned, e.touchpoint, e.defines_return
    from gaps as g
    inner join events as e
        on g.account_id = e.account_id
        and e.occurred_at > g.ended_at
        and e.occurred_at <= g.ended_at + to_days(cast($window_days as integer))
        and (g.next_started_at is null or e.occurred_at < g.next_started_at)
),

totals as (
    select count(*) as gaps, count(*) filter (where returned) as returned from gaps
),

final as (
    select
        g.touchpoint,
        bool_or(g.defines_return) as defines_return,
        count(*) as gaps_with,
        count(*) filter (where g.returned) as returned_with,
        any_value(t.gaps) as gaps,
        any_value(t.returned) as returned
    from in_gap as g, totals as t
    group by g.touchpoint
)

select * from final
order by gaps_with desc, touchpoint
