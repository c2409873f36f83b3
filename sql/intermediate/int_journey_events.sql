-- Grain: one row per touchpoint that process mining reads: every touchpoint of an
-- account up to the as-of date, mapped to a stage or not, except outbound activities
-- (config; default email sent and delivered): the company's actions, not the
-- account's, which would swamp the paths.
-- engagement_cycle: 1 + the number of the account's engagements that ended before
-- the touchpoint, so a cycle is the stretch of the journey up to and including one
-- engagement (the last cycle is open).
-- event_order: a total order; events with the same time keep the order of their
-- source (file name order, then row number), so an activity log equals what pm4py
-- reads from the same file (contract v2).
with params as (
    select * from run_parameters
),

touchpoints as (
    select t.*
    from int_touchpoints_staged as t, params as p
    where t.account_id is not null
        and t.occurred_at <= p.as_of
        and not exists (
            select 1 from outbound_activities as o
            where o.channel = t.channel and o.activity = t.activity
        )
),

ended as (
    select account_id, ended_at, engagement_no
    from engagements
    where ended_at is not null
),

-- A plain join on account and aggregate, not an ASOF join: an account has few
-- engagements, and DuckDB's ASOF LEFT JOIN with a strict inequality took 290 s
-- where this takes about 1 s at 10 M events (BENCHMARKS.md). Only touchpoints after
-- an ended engagement are grouped (an inner join); the others are in cycle 1.
cycles as (
    select
        t.touchpoint_id,
        max(e.engagement_no) + 1 as engagement_cycle
    from touchpoints as t
    inner join ended as e
        on t.account_id = e.account_id and t.occurred_at > e.ended_at
    group by t.touchpoint_id
),

with_cycle as (
    select t.*, coalesce(c.engagement_cycle, 1) as engagement_cycle
    from touchpoints as t
    left join cycles as c on t.touchpoint_id = c.touchpoint_id
),

-- event_order numbered per day, then offset by the events of the days before: the same
-- total order as one row_number() over every event, without a window over the whole
-- table (on Spark that is one task for all events: sql/README.md).
numbered as (
    select
        *,
        row_number() over (
            partition by cast(occurred_at as date)
            order by occurred_at, source_file, source_row, touchpoint_id
        ) as order_in_day
    from with_cycle
),

days as (
    select
        cast(occurred_at as date) as day,
        sum(count(*)) over (order by cast(occurred_at as date) rows unbounded preceding)
            - count(*) as events_before
    from with_cycle
    group by cast(occurred_at as date)
),

final as (
    select
        touchpoint_id,
        account_id,
        contact_id,
        account_id || '#' || engagement_cycle as engagement_cycle_id,
        engagement_cycle,
        opportunity_id,
        campaign_id,
        campaign_name,
        marketing_channel,
        source_medium,
        occurred_at,
        channel,
        activity,
        stage,
        stage_order,
        is_negative,
        source_file,
        source_row,
        cast(d.events_before + n.order_in_day as bigint) as event_order
    from numbered as n
    inner join days as d on d.day = cast(n.occurred_at as date)
)

-- Stored in event order: the OCEL export reads one range of event_order at a time
-- (sql/exports/event_batches.sql), which then reads only its own row groups.
select * from final
order by event_order
