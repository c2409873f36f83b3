-- Every account each contact and opportunity of the journeys was seen on, with its
-- first account (in account order, `home_account`) and, for an opportunity, its first
-- event on that account: computed once per OCEL export, so a range of accounts finds the
-- contacts and opportunities it writes (those whose first account is in the range) and
-- all of their accounts without reading the whole journey table again. Read per range,
-- each query had read it twice: 45 ranges, 144 s of the 283 s export at 100 M events.
-- A temporary table of the export's connection, stored in home_account order so a range
-- reads only its own row groups; exports.write_ocel drops it when done.
create or replace temporary table ocel_object_accounts as
with pairs as (
    select 'contact' as otype, contact_id as object_id, account_id,
           null::timestamp as first_at
    from int_journey_events
    where contact_id is not null
    group by contact_id, account_id
    union all
    select 'opportunity', opportunity_id, account_id, min(occurred_at)
    from int_journey_events
    where opportunity_id is not null
    group by opportunity_id, account_id
)

select
    otype,
    object_id,
    account_id,
    first_at,
    min(account_id) over (partition by otype, object_id) as home_account
from pairs
order by home_account, otype, object_id, account_id
