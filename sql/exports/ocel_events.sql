-- The OCEL 2.0 events with event_order from $first_order to $last_order, in event order,
-- each touchpoint as one JSON item with its stage, channel and marketing channel
-- (an attribute with no value is left out) and its relationships to its account,
-- contact, opportunity and campaign. DuckDB escapes every value (to_json) and keeps
-- microseconds. exports.write_ocel writes one range at a time
-- (sql/exports/event_batches.sql).
select to_json({
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
from int_journey_events
where event_order between $first_order and $last_order
order by event_order
