-- Grain: one row per ladder stage: how many accounts were ever in the stage as
-- inferred (account_stage_history, contract v2), how many are in it now, and how many
-- stays it had. The process map sizes its stages by accounts_ever_in. How sure:
-- inferred_stays are the stays read from signals (not observed by the engagement
-- rules), unsure_stays those of them with confidence below 0.6 (little or mixed
-- evidence).
with history as (
    select * from account_stage_history
),

stays as (
    select
        stage,
        count(distinct account_id) as accounts_ever_in,
        count(distinct account_id) filter (where left_at is null) as accounts_in_now,
        count(*) as stays,
        count(*) filter (where method not in ('engagement', 'signal', 'observed'))
            as inferred_stays,
        count(*) filter (where method not in ('engagement', 'signal', 'observed')
                           and confidence < 0.6)
            as unsure_stays
    from history
    group by stage
),

final as (
    select
        l.stage,
        l.stage_order,
        coalesce(s.accounts_ever_in, 0) as accounts_ever_in,
        coalesce(s.accounts_in_now, 0) as accounts_in_now,
        coalesce(s.stays, 0) as stays,
        coalesce(s.inferred_stays, 0) as inferred_stays,
        coalesce(s.unsure_stays, 0) as unsure_stays
    from stage_ladder as l
    left join stays as s on l.stage = s.stage
)

select * from final
order by stage_order
