-- True when every touchpoint starts an engagement (a purchase log with nothing else in
-- it): churn reasons then say "purchase" where they would say "touchpoint".
select count(*) = 0 as purchases_only
from touchpoints t
where not exists (
    select 1 from engagement_rules r where r.activity = t.activity and r.role = 'start'
)
