-- The account-level activity log as the lines of an XES file (IEEE 1849-2016), in file
-- order: the header, then per account a <trace> with its events in event order, then
-- the footer. Every value is XML-escaped here; timestamps keep their microseconds (UTC).
-- Read in batches and written as they come (exports.write_xes): memory stays bounded by
-- a batch whatever the size of the log, and no pandas frame of the log is ever built.
with events as (
    select account_id, event_order, activity, occurred_at, stage, channel, contact_id,
           touchpoint_id
    from int_journey_events
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
    select 0 as part, null::varchar as account_id, 0::bigint as line_order,
           '<?xml version="1.0" encoding="utf-8" ?>' || chr(10)
           || '<log xes.version="1849-2016" xes.features="nested-attributes" '
           || 'xmlns="http://www.xes-standard.org/">' || chr(10)
           || chr(9) || '<extension name="Time" prefix="time" '
           || 'uri="http://www.xes-standard.org/time.xesext" />' || chr(10)
           || chr(9) || '<extension name="Concept" prefix="concept" '
           || 'uri="http://www.xes-standard.org/concept.xesext" />' as line
    union all
    select 1, account_id, -1,
           chr(9) || '<trace>' || chr(10) || chr(9) || chr(9)
           || '<string key="concept:name" value="' || any_value(v[1]) || '" />'
    from escaped
    group by account_id
    union all
    select 1, account_id, event_order,
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
    select 1, account_id, 9223372036854775807, chr(9) || '</trace>'
    from escaped
    group by account_id
    union all
    select 2, null, 0, '</log>'
)

select line from lines
order by part, account_id, line_order
