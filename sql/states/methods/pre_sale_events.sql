-- The pre-sale touchpoints as the evidence and hmm methods read them, in journey order.
select account_id, occurred_at, activity, stage, stage_order, event_order, observed,
       period_no, first_at
from int_pre_sale_events
order by account_id, event_order
