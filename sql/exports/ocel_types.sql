-- The object types and event types of the OCEL 2.0 file (pm4py.read_ocel2_json reads
-- the standard's JSON form), each as one JSON item: part 'objectTypes' or 'eventTypes',
-- in name order. A type is declared when the journeys hold an object or event of it;
-- each object type declares the attributes sql/exports/ocel_objects.sql gives its
-- objects, in the same order.
with object_types (otype, attribute, attribute_type, position) as (
    values ('account', 'account_name', 'string', 1),
           ('account', 'industry', 'string', 2),
           ('account', 'employees', 'integer', 3),
           ('account', 'country', 'string', 4),
           ('contact', 'role', 'string', 1),
           ('contact', 'title', 'string', 2),
           ('opportunity', 'opened_at', 'date', 1),
           ('campaign', 'campaign_name', 'string', 1),
           ('campaign', 'marketing_channel', 'string', 2)
),

present as (
    select 'account' as otype where exists (select 1 from int_journey_events)
    union all select 'contact'
    where exists (select 1 from int_journey_events where contact_id is not null)
    union all select 'opportunity'
    where exists (select 1 from int_journey_events where opportunity_id is not null)
    union all select 'campaign'
    where exists (select 1 from int_journey_events where campaign_id is not null)
)

select 'objectTypes' as part, t.otype as name, to_json({
    'name': t.otype,
    'attributes': list({'name': t.attribute, 'type': t.attribute_type}
                       order by t.position)
}) as body
from object_types as t
semi join present using (otype)
group by t.otype
union all
select 'eventTypes', activity, to_json({
    'name': activity,
    'attributes': [{'name': 'stage', 'type': 'string'},
                   {'name': 'channel', 'type': 'string'},
                   {'name': 'marketing_channel', 'type': 'string'}]
})
from (select distinct activity from int_journey_events)
order by part desc, name
