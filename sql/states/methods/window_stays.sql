-- The window method's stays (stage_inference, method window): per account, the highest
-- stage signalled within $window_days since the last lost deal; after a lost deal (an
-- engagement_rules activity of role lost) the account is back at consideration at least.
-- Grain: one row per stay (account, run of one stage). confidence: the share of the
-- stay's signals that point to its stage, one contrary signal more than seen (as the
-- evidence method's confidence).
with ladder as (
    select
        min(stage_order) filter (where phase = 'prospect') as first_order,
        min(stage_order) filter (where stage = 'consideration') as after_loss_order
    from stage_ladder
),

events as (
    select
        *,
        coalesce(count(*) filter (
            where activity in (select activity from engagement_rules where role = 'lost')
        ) over (
            partition by account_id order by event_order
            rows between unbounded preceding and 1 preceding
        ), 0) as lost_before
    from int_pre_sale_events
),

state as (
    select
        e.account_id,
        e.occurred_at,
        e.event_order,
        e.stage_order as signal_order,
        greatest(
            case when e.lost_before > 0 then l.after_loss_order else l.first_order end,
            max(e.stage_order) over (
                partition by e.account_id, e.lost_before order by e.occurred_at
                range between to_days($window_days) preceding and current row
            )
        ) as stage_order
    from events as e
    cross join ladder as l
),

changes as (
    select
        *,
        stage_order is distinct from lag(stage_order) over (
            partition by account_id order by event_order
        ) as is_new
    from state
),

runs as (
    select
        *,
        sum(is_new::integer) over (
            partition by account_id order by event_order rows unbounded preceding
        ) as run_no
    from changes
)

select
    r.account_id,
    l.stage,
    min(r.occurred_at) as entered_at,
    count(*) filter (where r.signal_order = r.stage_order) / (count(*) + 1.0) as confidence,
    count(*) as evidence
from runs as r
inner join stage_ladder as l on r.stage_order = l.stage_order
group by r.account_id, r.run_no, l.stage
