-- Start and end activities of an event log: how many cases start and end with each.
with bounds as (
    select
        case_id,
        arg_min(activity, event_index) as first_activity,
        arg_max(activity, event_index) as last_activity
    from event_log
    group by case_id
),

starts as (
    select first_activity as activity, count(*) as starts from bounds group by 1
),

ends as (
    select last_activity as activity, count(*) as ends from bounds group by 1
),

final as (
    select
        coalesce(s.activity, e.activity) as activity,
        coalesce(s.starts, 0) as starts,
        coalesce(e.ends, 0) as ends
    from starts as s
    full outer join ends as e on s.activity = e.activity
)

select * from final
order by starts desc, ends desc, activity
