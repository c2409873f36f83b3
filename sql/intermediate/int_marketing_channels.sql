-- Grain: one row per channel_key: a distinct combination of the fields marketing channel
-- rules read (contract v3 section 5; int_touchpoints_unioned makes the key), with the channel of the first rule whose conditions all hold
-- ('other' when none does). The rules are the table marketing_channel_rules, one row per
-- condition (pattern NULL: the field is empty); they run once per combination, not once
-- per touchpoint. Values are compared lower-cased and trimmed; empty strings are empty.
-- source_medium is web analytics' "source / medium" (a visit without UTM tags: its
-- referring site / organic, social, email or referral as the *default* rules group it,
-- whatever rules the user runs, or (direct) / (none)); email platform events are
-- "email platform / email", CRM activities "crm / <activity>". The rules table holds two
-- rule sets: 'in use' (what marketing_channel follows) and 'default'.
with touchpoints as (
    select * from int_touchpoints_unioned
),

combinations as (  -- one row per channel_key (int_touchpoints_unioned)
    select
        channel_key,
        any_value(channel) as channel,
        any_value(activity) as activity,
        any_value(utm_source) as utm_source,
        any_value(utm_medium) as utm_medium,
        any_value(utm_campaign) as utm_campaign,
        any_value(referrer_host) as referrer_host,
        any_value(coalesce(campaign_name, campaign_id)) as campaign
    from touchpoints
    group by channel_key
),

fields as (
    select
        *,
        nullif(lower(trim(channel)), '') as f_system,
        nullif(lower(trim(activity)), '') as f_activity,
        nullif(lower(trim(utm_source)), '') as f_utm_source,
        nullif(lower(trim(utm_medium)), '') as f_utm_medium,
        nullif(lower(trim(utm_campaign)), '') as f_utm_campaign,
        nullif(lower(trim(referrer_host)), '') as f_referrer,
        nullif(lower(trim(campaign)), '') as f_campaign
    from combinations
),

checked as (  -- every condition of every rule against every combination
    select
        f.channel_key,
        r.rule_set,
        r.rule_no,
        r.marketing_channel,
        case r.field
            when 'system' then f.f_system
            when 'activity' then f.f_activity
            when 'utm_source' then f.f_utm_source
            when 'utm_medium' then f.f_utm_medium
            when 'utm_campaign' then f.f_utm_campaign
            when 'referrer' then f.f_referrer
            when 'campaign' then f.f_campaign
        end as value,
        r.pattern
    from fields as f
    cross join marketing_channel_rules as r
),

matched as (  -- the rules whose conditions all hold, per combination
    select
        channel_key,
        rule_set,
        rule_no,
        any_value(marketing_channel) as marketing_channel
    from checked
    group by channel_key, rule_set, rule_no
    having bool_and(
        case
            when pattern is null then value is null
            else coalesce(regexp_full_match(value, pattern, 'i'), false)
        end
    )
),

first_match as (
    select
        channel_key,
        arg_min(marketing_channel, rule_no) filter (where rule_set = 'in use')
            as marketing_channel,
        min(rule_no) filter (where rule_set = 'in use') as rule_no,
        arg_min(marketing_channel, rule_no) filter (where rule_set = 'default')
            as default_channel
    from matched
    group by channel_key
),

final as (
    select
        c.channel_key,
        coalesce(m.marketing_channel, 'other') as marketing_channel,
        case c.channel
            when 'web' then
                coalesce(c.f_utm_source, c.f_referrer, '(direct)') || ' / '
                || coalesce(
                    c.f_utm_medium,
                    case  -- an untagged visit's medium, as web analytics names it
                        when c.f_referrer is null then '(none)'
                        when m.default_channel = 'organic search' then 'organic'
                        when m.default_channel = 'organic social' then 'social'
                        when m.default_channel = 'email' then 'email'
                        else 'referral'
                    end
                )
            when 'email' then 'email platform / email'
            else c.channel || ' / ' || c.activity
        end as source_medium,
        m.rule_no
    from fields as c
    left join first_match as m on c.channel_key = m.channel_key
)

select * from final
