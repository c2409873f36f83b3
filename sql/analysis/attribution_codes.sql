-- The values of one dimension's paths (_attribution_touches), into the temp table
-- _attribution_codes: one row per value with its integer code, its rank from 1 in
-- sorted order. Paths are lists of these codes (attribution_distinct_paths.sql), so
-- they reach Python as flat integer arrays, not as lists of strings.
create or replace temp table _attribution_codes as
select value, row_number() over (order by value) as code
from (select distinct value from _attribution_touches where value is not null)
