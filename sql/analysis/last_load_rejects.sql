-- The rows the last load rejected, with why: what a user opens when the data-quality
-- gate stops a run (written to <outputs>/rejected_rows.csv).
select source, file, row_number, reason, raw
from rejected_rows
where load_id = (select max(load_id) from loads)
order by source, file, row_number
