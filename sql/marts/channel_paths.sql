-- Grain: one row per (dimension, path) of the 100 most common paths per dimension: the
-- order in which accounts first met each marketing channel (dimension marketing_channel),
-- source / medium (source_medium) or recording system (channel), up to becoming a client
-- (its first client stay, account_stage_history), or up to the as-of date for the others.
-- Each value counts once, where it was first met: with a dozen channels the full
-- touchpoint sequence is unique to almost every account, the order of first contact is
-- not. A path keeps its first three steps, "…" marking that more followed ("email > paid
-- search > direct > …"): the first contacts are what a marketer reads, and three of a
-- dozen channels leave paths shared by enough accounts to compare. became_clients
-- counts the accounts on the path that became clients; conversion is
-- became_clients / accounts.
with events as (
    select account_id, occurred_at, event_order, marketing_channel, source_medium, channel
    from int_journey_events
),

clients as (
    select account_id, min(entered_at) as client_at
    from account_stage_history
    where stage = 'client'
    group by account_id
),

dimensions as (
    select * from (values ('marketing_channel'), ('source_medium'), ('channel')) as d (dimension)
),

touches as (
    select
        e.account_id,
        e.event_order,
        d.dimension,
        case d.dimension
            when 'marketing_channel' then e.marketing_channel
            when 'source_medium' then e.source_medium
            else e.channel
        end as value,
        c.client_at is not null as became_client
    from events as e
    cross join dimensions as d
    left join clients as c on e.account_id = c.account_id
    where c.client_at is null or e.occurred_at < c.client_at
),

marked as (
    select
        *,
        row_number() over (
            partition by account_id, dimension, value order by event_order
        ) = 1 as is_new_step
    from touches
),

journeys as (
    select
        account_id,
        dimension,
        any_value(became_client) as became_client,
        list(value order by event_order) as steps
    from marked
    where is_new_step
    group by account_id, dimension
),

paths as (
    select
        dimension,
        became_client,
        case
            when array_length(steps) > 3 then array_to_string(list_slice(steps, 1, 3), ' > ') || ' > …'
            else array_to_string(steps, ' > ')
        end as path
    from journeys
),

counted as (
    select
        dimension,
        path,
        count(*) as accounts,
        count(*) filter (where became_client) as became_clients
    from paths
    group by dimension, path
),

final as (
    select
        dimension,
        row_number() over (
            partition by dimension order by accounts desc, became_clients desc, path
        ) as path_rank,
        path,
        accounts,
        accounts / sum(accounts) over (partition by dimension) as share,
        became_clients,
        became_clients / accounts as conversion
    from counted
)

select * from final
where path_rank <= 100
order by dimension, path_rank
