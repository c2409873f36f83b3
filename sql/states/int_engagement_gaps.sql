-- Grain: one row per gap between engagements: from an engagement's end by completion to
-- the next start, a cancellation, or the as-of date (gap_end). Where renewal cycles are
-- looked for (int_inferred_stays).
with engagement as (
    select
        account_id,
        engagement_no,
        started_at,
        ended_at,
        end_kind,
        lead(started_at) over (partition by account_id order by engagement_no) as next_start
    from engagements
),

cancellations as (
    select account_id, occurred_at
    from int_journey_events
    where activity in (select activity from engagement_rules where role = 'cancel')
),

gaps as (
    select e.account_id, e.ended_at, e.next_start, min(c.occurred_at) as cancelled_at
    from engagement as e
    left join cancellations as c
        on e.account_id = c.account_id
        and c.occurred_at > e.ended_at
        and (e.next_start is null or c.occurred_at < e.next_start)
    where e.ended_at is not null and e.end_kind <> 'cancelled'
    group by all
),

final as (
    select
        g.account_id,
        g.ended_at,
        g.next_start,
        least(coalesce(g.next_start, p.as_of), coalesce(g.cancelled_at, p.as_of)) as gap_end
    from gaps as g
    cross join run_parameters as p
)

select * from final
order by account_id, ended_at
