-- An event log for process mining, one row per event.
-- Bound parameters choose the abstraction and the case notion:
--   $level:       'stage' (activity = the inferred stage the account is in, one event per
--                 stay of account_stage_history; contract v2) or 'activity' (every
--                 touchpoint's activity, from int_journey_events, as it happened).
--                 Stage states are inferred per account, so with the 'contact' case
--                 notion the stage level falls back to each touchpoint's signalled stage.
--   $case_notion: 'account', 'contact' or 'engagement_cycle'
--   $collapse:    true merges consecutive repeats of one activity within a case into one
--                 event at the first repeat's time; n_repeats keeps the count and
--                 last_at the last repeat's time.
-- Columns: case_id, activity, timestamp, event_index (1.. within the case), n_repeats,
-- last_at, account_id, and the directly-following event of the same case:
-- next_activity, hours_to_next (empty at the case's last event). Computing the
-- successor here, once, makes the directly-follows graph one GROUP BY.
with touchpoint_events as (
    select
        case $case_notion
            when 'account' then account_id
            when 'contact' then contact_id
            when 'engagement_cycle' then engagement_cycle_id
        end as case_id,
        case $level when 'stage' then stage else activity end as activity,
        occurred_at,
        event_order,
        account_id
    from int_journey_events
    where $level = 'activity' or $case_notion = 'contact'
),

stay_events as (
    select
        case $case_notion
            when 'account' then account_id
            else account_id || '#' || engagement_cycle
        end as case_id,
        stage as activity,
        entered_at as occurred_at,
        row_number() over (order by entered_at, stage_order, account_id) as event_order,
        account_id
    from account_stage_history
    where $level = 'stage' and $case_notion <> 'contact'
),

events as (
    select * from touchpoint_events
    union all
    select * from stay_events
),

kept as (
    select * from events
    where case_id is not null and activity is not null
),

runs as (
    select
        *,
        case
            when not $collapse then event_order
            else sum(case when activity is distinct from prev_activity then 1 else 0 end)
                over (partition by case_id order by event_order rows unbounded preceding)
        end as run_no
    from (
        select *, lag(activity) over (partition by case_id order by event_order) as prev_activity
        from kept
    )
),

collapsed as (
    select
        case_id,
        any_value(account_id) as account_id,
        arg_min(activity, event_order) as activity,
        min(occurred_at) as timestamp,
        max(occurred_at) as last_at,
        count(*) as n_repeats,
        min(event_order) as first_order
    from runs
    group by case_id, run_no
),

final as (
    select
        case_id,
        activity,
        timestamp,
        cast(row_number() over by_case as integer) as event_index,
        cast(n_repeats as integer) as n_repeats,
        last_at,
        account_id,
        lead(activity) over by_case as next_activity,
        (epoch(lead(timestamp) over by_case) - epoch(timestamp)) / 3600.0 as hours_to_next
    from collapsed
    window by_case as (partition by case_id order by first_order)
)

select * from final
order by case_id, event_index
