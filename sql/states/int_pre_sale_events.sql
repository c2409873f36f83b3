-- Grain: one row per pre-sale touchpoint of an account: before its first engagement
-- and before any client-side signal, signalling a prospect stage. What the pre-sale
-- stage-inference methods read (int_inferred_stays).
-- observed: the stage map's `observed:` says this activity records the stage (a CRM
--   lifecycle field), so it pins the state instead of being evidence of it.
-- period_no: periods of $period_days counted from the account's first touchpoint (the
--   hmm method's observation grid).
with events as (
    select
        t.account_id,
        t.occurred_at,
        t.activity,
        t.stage,
        t.stage_order,
        t.event_order,
        exists (
            select 1 from observed_stage_changes as o
            where o.channel = t.channel and o.activity = t.activity
        ) as observed
    from int_journey_events as t
    where t.stage in (select stage from stage_ladder where phase = 'prospect')
),

sold as (
    select account_id, min(occurred_at) as sold_at
    from (
        select account_id, started_at as occurred_at from engagements
        union all
        select account_id, occurred_at from int_journey_events
        where stage in (select stage from stage_ladder where phase = 'client')
    )
    group by account_id
),

pre_sale as (
    select e.*
    from events as e
    left join sold as s on e.account_id = s.account_id
    where s.sold_at is null or e.occurred_at < s.sold_at
),

final as (
    select
        account_id,
        occurred_at,
        activity,
        stage,
        stage_order,
        event_order,
        observed,
        cast(floor(
            (epoch(occurred_at) - epoch(min(occurred_at) over (partition by account_id)))
            / (86400.0 * $period_days)) as integer) as period_no,
        min(occurred_at) over (partition by account_id) as first_at
    from pre_sale
)

select * from final
order by account_id, event_order
