-- The OCEL 2.0 objects of the accounts from $first_account to $last_account, each as
-- one JSON item with its attributes (an attribute with no value is left out) and its
-- "belongs to" relationships, in object id order within the range: the account, the
-- contacts and opportunities whose first account (in account order) is in the range,
-- and, when $with_campaigns (the first range), every campaign. exports.write_ocel
-- writes one range at a time (sql/exports/account_batches.sql). A contact or
-- opportunity seen on several accounts is written once, with all of its accounts and
-- all of its events (sql/exports/ocel_object_accounts.sql).
with batch_events as (
    select account_id
    from int_journey_events
    where account_id between $first_account and $last_account
),

accounts as (
    select 'account:' || e.account_id as oid, 'account' as otype,
           [{'name': 'account_name', 'value': any_value(a.account_name)},
            {'name': 'industry', 'value': any_value(a.industry)},
            {'name': 'employees', 'value': any_value(a.employees)::varchar},
            {'name': 'country', 'value': any_value(a.country)}] as attributes,
           []::struct(objectId varchar, qualifier varchar)[] as relationships
    from (select distinct account_id from batch_events) as e
    left join stg_crm__accounts as a using (account_id)
    group by e.account_id
),

range_objects as (  -- from sql/exports/ocel_object_accounts.sql, computed once
    select otype, object_id, account_id, first_at
    from ocel_object_accounts
    where home_account between $first_account and $last_account
),

contacts as (
    select 'contact:' || e.object_id as oid, 'contact' as otype,
           [{'name': 'role', 'value': any_value(c.role)},
            {'name': 'title', 'value': any_value(c.title)}] as attributes,
           list({'objectId': 'account:' || e.account_id, 'qualifier': 'belongs to'}
                order by e.account_id) as relationships
    from range_objects as e
    left join stg_crm__contacts as c on c.contact_id = e.object_id
    where e.otype = 'contact'
    group by e.object_id
),

opportunities as (
    select 'opportunity:' || object_id as oid, 'opportunity' as otype,
           [{'name': 'opened_at', 'value': strftime(min(first_at),
                                                    '%Y-%m-%dT%H:%M:%S.%f+00:00')}]
               as attributes,
           list({'objectId': 'account:' || account_id, 'qualifier': 'belongs to'}
                order by account_id) as relationships
    from range_objects
    where otype = 'opportunity'
    group by object_id
),

campaigns as (
    select 'campaign:' || campaign_id as oid, 'campaign' as otype,
           [{'name': 'campaign_name', 'value': max(campaign_name)},
            {'name': 'marketing_channel', 'value': mode(marketing_channel)}] as attributes,
           []::struct(objectId varchar, qualifier varchar)[] as relationships
    from int_journey_events
    where campaign_id is not null and $with_campaigns
    group by campaign_id
),

objects as (
    select * from accounts
    union all select * from contacts
    union all select * from opportunities
    union all select * from campaigns
)

select to_json({
    'id': oid,
    'type': otype,
    'attributes': [{'name': a.name, 'time': '1970-01-01T00:00:00+00:00', 'value': a.value}
                   for a in attributes if a.value is not null],
    'relationships': relationships
}) as body
from objects
order by oid
