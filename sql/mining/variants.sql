-- Variants of an event log: one row per distinct path, with its case count, share
-- of cases (coverage), rank and cumulative coverage, so a top-k list always comes
-- with the share of the long tail it leaves out.
-- Each activity becomes one character while the paths are built and grouped (short
-- strings hash and compare fast); only the distinct paths are spelled out again.
-- A case's path is built without an ordered aggregate (which sorts inside every
-- group, half the time of this query): each event is one integer, its index times
-- 2^20 plus its activity's code, and the case's list of integers is sorted.
with codes as (
    select
        activity,
        cast(32 + row_number() over (order by activity) as integer) as code
    from (select distinct activity from event_log)
),

names as (
    select list(activity order by code) as names from codes
),

paths as (
    select
        l.case_id,
        array_to_string(
            list_transform(
                list_sort(list(l.event_index * 1048576 + c.code)),
                lambda x: chr(cast(x % 1048576 as integer))
            ),
            ''
        ) as path,
        count(*) as length
    from event_log as l
    inner join codes as c on l.activity = c.activity
    group by l.case_id
),

counted as (
    select path, any_value(length) as length, count(*) as cases
    from paths
    group by path
),

spelled as (
    select
        array_to_string(
            list_transform(string_split(c.path, ''), lambda x: n.names[unicode(x) - 32]),
            ' > '
        ) as variant,
        c.length,
        c.cases
    from counted as c, names as n
),

final as (
    -- rank and cumulative coverage from one sort (one window)
    select
        variant,
        length,
        cases,
        cases / sum(cases) over () as coverage,
        cast(row_number() over by_rank as integer) as variant_rank,
        sum(cases) over (by_rank rows unbounded preceding) / sum(cases) over ()
            as cumulative_coverage
    from spelled
    window by_rank as (order by cases desc, variant)
)

select * from final
order by variant_rank
