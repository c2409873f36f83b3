-- The journeys as the lines of an OCEL 2.0 JSON file (the standard's JSON form, read by
-- pm4py.read_ocel2_json), in file order: object and event types, then every object with
-- its attributes and "belongs to" relationships, then every touchpoint as an event in
-- event order with its relationships to account, contact, opportunity and campaign.
-- DuckDB escapes every value (to_json) and keeps microseconds; exports.write_ocel writes
-- the lines a batch at a time, so memory stays bounded by a batch at any size and no
-- pandas frame of the log is built (pm4py's writer took 63 s at 1 M events).
-- Objects are those the events relate to; an attribute with no value is left out.
with events as (
    select touchpoint_id, account_id, contact_id, opportunity_id, campaign_id,
           campaign_name, marketing_channel, activity, occurred_at, stage, channel,
           event_order
    from int_journey_events
),

accounts as (
    select 'account:' || e.account_id as oid, 'account' as otype,
           [{'name': 'account_name', 'value': any_value(a.account_name)},
            {'name': 'industry', 'value': any_value(a.industry)},
            {'name': 'employees', 'value': any_value(a.employees)::varchar},
            {'name': 'country', 'value': any_value(a.country)}] as attributes,
           []::struct(objectId varchar, qualifier varchar)[] as relationships
    from (select distinct account_id from events) as e
    left join stg_crm__accounts as a using (account_id)
    group by e.account_id
),

contacts as (
    select 'contact:' || e.contact_id as oid, 'contact' as otype,
           [{'name': 'role', 'value': any_value(c.role)},
            {'name': 'title', 'value': any_value(c.title)}] as attributes,
           list(distinct {'objectId': 'account:' || e.account_id,
                          'qualifier': 'belongs to'}) as relationships
    from (select distinct contact_id, account_id from events
          where contact_id is not null) as e
    left join stg_crm__contacts as c using (contact_id)
    group by e.contact_id
),

opportunities as (
    select 'opportunity:' || opportunity_id as oid, 'opportunity' as otype,
           [{'name': 'opened_at', 'value': strftime(min(occurred_at),
                                                    '%Y-%m-%dT%H:%M:%S.%f+00:00')}]
               as attributes,
           list(distinct {'objectId': 'account:' || account_id,
                          'qualifier': 'belongs to'}) as relationships
    from events
    where opportunity_id is not null
    group by opportunity_id
),

campaigns as (
    select 'campaign:' || campaign_id as oid, 'campaign' as otype,
           [{'name': 'campaign_name', 'value': max(campaign_name)},
            {'name': 'marketing_channel', 'value': mode(marketing_channel)}] as attributes,
           []::struct(objectId varchar, qualifier varchar)[] as relationships
    from events
    where campaign_id is not null
    group by campaign_id
),

objects as (
    select * from accounts
    union all select * from contacts
    union all select * from opportunities
    union all select * from campaigns
),

object_types as (  -- the attributes each type declares, in the order objects list them
    select otype, to_json({
        'name': otype,
        'attributes': [{'name': a.name, 'type': case when a.name = 'employees' then 'integer'
                                                     when a.name = 'opened_at' then 'date'
                                                     else 'string' end}
                       for a in any_value(attributes)]
    }) as body
    from objects
    group by otype
),

event_types as (
    select activity, to_json({
        'name': activity,
        'attributes': [{'name': 'stage', 'type': 'string'},
                       {'name': 'channel', 'type': 'string'},
                       {'name': 'marketing_channel', 'type': 'string'}]
    }) as body
    from (select distinct activity from events)
),

object_lines as (
    select oid, to_json({
        'id': oid,
        'type': otype,
        'attributes': [{'name': a.name, 'time': '1970-01-01T00:00:00+00:00',
                        'value': a.value}
                       for a in attributes if a.value is not null],
        'relationships': relationships
    }) as body
    from objects
),

event_lines as (
    select event_order, to_json({
        'id': touchpoint_id,
        'type': activity,
        'time': strftime(occurred_at, '%Y-%m-%dT%H:%M:%S.%f+00:00'),
        'attributes': [{'name': a.name, 'value': a.value}
                       for a in [{'name': 'stage', 'value': stage},
                                 {'name': 'channel', 'value': channel},
                                 {'name': 'marketing_channel', 'value': marketing_channel}]
                       if a.value is not null],
        'relationships': [{'objectId': r.objectId, 'qualifier': r.qualifier}
                          for r in [{'objectId': 'account:' || account_id,
                                     'qualifier': 'of account'},
                                    {'objectId': 'contact:' || contact_id,
                                     'qualifier': 'by contact'},
                                    {'objectId': 'opportunity:' || opportunity_id,
                                     'qualifier': 'on opportunity'},
                                    {'objectId': 'campaign:' || campaign_id,
                                     'qualifier': 'from campaign'}]
                          if r.objectId is not null]
    }) as body
    from events
),

-- Each list of the file is its own part; an item is preceded by a comma unless first.
items as (
    select 1 as part, otype as sort_key, 0::bigint as sort_no, body from object_types
    union all select 3, activity, 0, body from event_types
    union all select 5, oid, 0, body from object_lines
    union all select 7, null, event_order, body from event_lines
),

lines as (
    select part, sort_key, sort_no,
           case when row_number() over (partition by part order by sort_key, sort_no) = 1
                then '  ' else ', ' end || body as line
    from items
    union all select 0, null, 0, '{"objectTypes": ['
    union all select 2, null, 0, '], "eventTypes": ['
    union all select 4, null, 0, '], "objects": ['
    union all select 6, null, 0, '], "events": ['
    union all select 8, null, 0, ']}'
)

select line from lines
order by part, sort_key, sort_no
