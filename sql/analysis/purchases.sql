-- Every purchase (an engagement start) up to the build's as-of date: what the BG/NBD model
-- of a non-contractual business is fitted on (journey_mining.purchase_model).
select e.account_id, e.started_at as purchased_at
from engagements as e
cross join run_parameters as p
where e.started_at <= p.as_of
order by e.account_id, e.started_at
