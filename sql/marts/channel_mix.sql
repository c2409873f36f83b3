-- Grain: one row per (stage, marketing channel): the touchpoints of the journeys made
-- while the account was *in* the stage (its inferred stay, account_stage_history), by
-- marketing channel, with their share of the stage's touchpoints and how many of the
-- accounts in the stage had one. By the stage the account is in, not the stage the
-- touchpoint signals: the latter would only restate the stage map (decision is signalled
-- by CRM activities alone, so "100 % sales from decision on" says nothing of behaviour).
with events as (
    select * from int_journey_events
),

stays as (
    select account_id, stage, entered_at, left_at from account_stage_history
),

in_stage as (
    select s.stage, e.marketing_channel, e.account_id
    from events as e
    inner join stays as s
        on e.account_id = s.account_id
        and e.occurred_at >= s.entered_at
        and (s.left_at is null or e.occurred_at < s.left_at)
),

counts as (
    select
        stage,
        marketing_channel,
        count(*) as touchpoints,
        count(distinct account_id) as accounts
    from in_stage
    group by stage, marketing_channel
),

stage_accounts as (
    select stage, count(distinct account_id) as accounts_in_stage
    from in_stage
    group by stage
),

final as (
    select
        c.stage,
        l.stage_order,
        c.marketing_channel,
        c.touchpoints,
        c.touchpoints / sum(c.touchpoints) over (partition by c.stage) as share,
        c.accounts,
        a.accounts_in_stage,
        c.accounts / a.accounts_in_stage as account_share
    from counts as c
    inner join stage_ladder as l on c.stage = l.stage
    inner join stage_accounts as a on c.stage = a.stage
)

select * from final
order by stage_order, marketing_channel
