-- Conversion drivers, one funnel step's candidates: one row per (driver, kind), with the
-- rows (_row) of the step's windows (the frame registered as _driver_windows, from
-- drivers_windows.sql) of the accounts that had it inside their window. A driver is a
-- touchpoint (channel:activity), a marketing channel (channel:<marketing channel>, any of
-- its touchpoints) or a buying role (role:<role> of a CRM contact with a touchpoint in
-- the window). Activities that signal $to_stage or a later stage are left
-- out: they are the step, not a lever (stages not on the ladder count as before it).
with windows as (select * from _driver_windows),
events as (
    select w._row, e.channel || ':' || e.activity as driver, 'touchpoint' as kind
    from windows w
    join int_journey_events e on e.account_id = w.account_id
        and e.occurred_at < w.window_end
    left join stage_ladder l on l.stage = e.stage
    where l.stage is null
        or l.stage_order < (select stage_order from stage_ladder where stage = $to_stage)
    union all
    select w._row, 'channel:' || e.marketing_channel, 'channel'
    from windows w
    join int_journey_events e on e.account_id = w.account_id
        and e.occurred_at < w.window_end
    left join stage_ladder l on l.stage = e.stage
    where l.stage is null
        or l.stage_order < (select stage_order from stage_ladder where stage = $to_stage)
    union all
    select w._row, 'role:' || lower(c.role), 'role'
    from windows w
    join int_journey_events e on e.account_id = w.account_id
        and e.occurred_at < w.window_end
    join stg_crm__contacts c on c.contact_id = e.contact_id
    where c.role is not null and e.channel = 'crm'
)
select driver, kind, list(distinct _row) as rows from events group by driver, kind
order by driver, kind
