-- The <trace> elements of an XES file (IEEE 1849-2016) for the accounts from
-- $first_account to $last_account, in account order, each trace's events in event
-- order; exports.write_xes writes the header and footer around them, a range of
-- accounts at a time (sql/exports/account_batches.sql). Every value is XML-escaped here;
-- timestamps keep their microseconds (UTC).
with events as (
    select account_id, event_order, activity, occurred_at, stage, channel, contact_id,
           touchpoint_id
    from int_journey_events
    where account_id between $first_account and $last_account
),

escaped as (  -- & first, then < > " ', and line breaks, which an attribute may not hold
    select
        account_id,
        event_order,
        occurred_at,
        list_transform(
            [account_id, activity, stage, channel, contact_id, touchpoint_id],
            lambda v: replace(replace(replace(replace(replace(replace(replace(
                v, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'),
                '''', '&apos;'), chr(10), '&#10;'), chr(13), '&#13;')
        ) as v
    from events
),

lines as (
    select account_id, -1::bigint as line_order,
           chr(9) || '<trace>' || chr(10) || chr(9) || chr(9)
           || '<string key="concept:name" value="' || any_value(v[1]) || '" />' as line
    from escaped
    group by account_id
    union all
    select account_id, event_order,
           chr(9) || chr(9) || '<event>' || chr(10)
           || chr(9) || chr(9) || chr(9) || '<string key="concept:name" value="' || v[2]
           || '" />' || chr(10)
           || chr(9) || chr(9) || chr(9) || '<date key="time:timestamp" value="'
           || strftime(occurred_at, '%Y-%m-%dT%H:%M:%S.%f') || '+00:00" />' || chr(10)
           || coalesce(chr(9) || chr(9) || chr(9) || '<string key="stage" value="' || v[3]
                       || '" />' || chr(10), '')
           || coalesce(chr(9) || chr(9) || chr(9) || '<string key="channel" value="' || v[4]
                       || '" />' || chr(10), '')
           || coalesce(chr(9) || chr(9) || chr(9) || '<string key="contact_id" value="'
                       || v[5] || '" />' || chr(10), '')
           || chr(9) || chr(9) || chr(9) || '<string key="touchpoint_id" value="' || v[6]
           || '" />' || chr(10)
           || chr(9) || chr(9) || '</event>'
    from escaped
    union all
    select account_id, 9223372036854775807, chr(9) || '</trace>'
    from escaped
    group by account_id
)

select line from lines
order by account_id, line_order
