-- Conversion drivers, one funnel step's candidates: one row per (driver, kind), with the
-- rows (_row) of the step's windows (the frame registered as _driver_windows, from
-- drivers_windows.sql) of the accounts that had it inside their window. A driver is a
-- touchpoint (channel:activity), a marketing channel (channel:<marketing channel>, any of
-- its touchpoints) or a buying role (role:<role> of a CRM contact with a touchpoint in
-- the window). Activities that signal $to_stage or a later stage are left
-- out: they are the step, not a lever (stages not on the ladder count as before it).
with windows as (select * from _driver_windows),
in_window as (  -- each window's touchpoints: one join, read by every kind of driver
    select w._row, e.channel, e.activity, e.marketing_channel, e.contact_id, e.stage
    from windows w
    join int_journey_events e on e.account_id = w.account_id
        and e.occurred_at < w.window_end
),
before_step as (
    select i.*
    from in_window i
    left join stage_ladder l on l.stage = i.stage
    where l.stage is null
        or l.stage_order < (select stage_order from stage_ladder where stage = $to_stage)
),
events as (
    select _row, channel || ':' || activity as driver, 'touchpoint' as kind
    from before_step
    union all
    select _row, 'channel:' || marketing_channel, 'channel'
    from before_step
    union all
    select i._row, 'role:' || lower(c.role), 'role'
    from in_window i
    join stg_crm__contacts c on c.contact_id = i.contact_id
    where c.role is not null and i.channel = 'crm'
)
select driver, kind, list(distinct _row) as rows from events group by driver, kind
order by driver, kind
