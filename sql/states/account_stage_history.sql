-- Grain: one row per account per stay in a stage (contract v2, section 4): the stage an
-- account *is in*, inferred from all its signals over time. Before the first sale the
-- stays of the configured method (int_inferred_stays, Python: evidence, window or hmm;
-- observed stage changes pin the state), after it the phases the engagement rules
-- observe (int_post_sale_phases), with the renewal cycles between engagements.
-- A stay that continues the stage before it is no new stay. left_at is null for the
-- stay the account is in now: the one current stage every mart and the report read.
-- engagement_cycle: as for touchpoints (int_journey_events), a stay entered at an
-- engagement's end (between engagements, former client) closes that engagement's
-- cycle; stays after the end (advocacy, a renewal, the next client stay) are in the
-- next one.
-- confidence (0-1): the share of the stay's evidence that points to its stage (evidence,
-- window), the mean posterior (hmm), 1 for what is recorded (engagement, signal,
-- observed). is_renewal: an evaluation or decision stay between engagements.
with stays as (
    select account_id, stage, entered_at, method, confidence, evidence
    from int_inferred_stays
    union all
    select account_id, stage, entered_at, method, 1.0, null
    from int_post_sale_phases
),

ordered as (
    select
        s.*,
        l.stage_order,
        lag(s.stage) over (
            partition by s.account_id order by s.entered_at, l.stage_order
        ) as previous_stage
    from stays as s
    inner join stage_ladder as l on s.stage = l.stage
),

merged as (
    select * from ordered
    where previous_stage is distinct from stage
),

cycles as (
    select
        m.account_id,
        m.entered_at,
        m.stage,
        coalesce(max(e.engagement_no), 0) + 1 as engagement_cycle
    from merged as m
    left join engagements as e
        on m.account_id = e.account_id and e.ended_at < m.entered_at
    group by all
),

final as (
    select
        m.account_id,
        cast(c.engagement_cycle as integer) as engagement_cycle,
        m.stage,
        m.entered_at,
        lead(m.entered_at) over (
            partition by m.account_id order by m.entered_at, m.stage_order
        ) as left_at,
        m.method,
        cast(m.stage_order as integer) as stage_order,
        cast(m.confidence as double) as confidence,
        cast(m.evidence as integer) as evidence,
        c.engagement_cycle > 1 and m.stage in ('evaluation', 'decision') as is_renewal
    from merged as m
    inner join cycles as c
        on m.account_id = c.account_id
        and m.entered_at = c.entered_at
        and m.stage = c.stage
)

select * from final
order by account_id, entered_at, stage_order
