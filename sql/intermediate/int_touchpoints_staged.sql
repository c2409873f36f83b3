-- Grain: one row per touchpoint, with the stage its activity signals (stage map)
-- and whether it is a negative signal (the map's list, or a score response at or
-- below its threshold, e.g. an NPS of 0-6), and its marketing channel (the first
-- matching rule of int_marketing_channels, by the combination key of the fields the
-- rules read).
with touchpoints as (
    select * from int_touchpoints_stitched
),

marketing_channels as (
    select * from int_marketing_channels
),

stage_signals as (
    select m.channel, m.activity, m.stage, l.stage_order
    from stage_map as m
    inner join stage_ladder as l on m.stage = l.stage
),

negatives as (
    select distinct channel, activity from negative_signals
),

score_fields as (  -- one rule per activity: which property holds its score
    select channel, activity, any_value(property) as property,
           any_value(negative_max) as negative_max
    from score_rules
    group by channel, activity
),

scored as (
    select
        t.*,
        s.stage,
        s.stage_order,
        try_cast(
            json_extract_string(t.properties, '$."' || r.property || '"') as double
        ) as score,
        n.activity is not null as is_listed_negative,
        r.negative_max,
        mc.marketing_channel,
        mc.source_medium
    from touchpoints as t
    left join stage_signals as s on t.channel = s.channel and t.activity = s.activity
    left join negatives as n on t.channel = n.channel and t.activity = n.activity
    left join score_fields as r on t.channel = r.channel and t.activity = r.activity
    left join marketing_channels as mc on t.channel_key = mc.channel_key
),

final as (
    select
        * exclude (is_listed_negative, negative_max),
        is_listed_negative
        or coalesce(score between 0 and negative_max, false) as is_negative
    from scored
)

select * from final
