-- Grain: one row: the headline numbers of the build, defined once for the CLI,
-- the reports and the notebooks.
-- re_engagement_rate = accounts with two or more engagements
--                      / accounts whose first engagement has ended (contract section 3).
with params as (
    select * from run_parameters
),

journeys as (
    select * from account_journeys
),

touchpoints as (
    select t.*
    from int_touchpoints_stitched as t, params as p
    where t.occurred_at <= p.as_of
),

visitors as (
    select * from int_visitors_resolved
),

emails as (
    select * from int_emails_resolved
),

final as (
    select
        p.as_of,
        p.dormancy_days,
        (select count(*) from journeys) as accounts,
        (select count(*) from journeys where n_touchpoints > 0) as accounts_with_touchpoints,
        (select count(*) from touchpoints) as touchpoints,
        (select count(*) from touchpoints where account_id is not null) as resolved_touchpoints,
        (select count(*) from touchpoints where account_id is not null)
        / nullif((select count(*) from touchpoints), 0) as resolved_share,
        (select count(*) from journeys where furthest_stage_order >= 5) as clients_ever,
        (select count(*) from journeys where dropped) as dropped_accounts,
        (select count(distinct account_id) from engagements
            where engagement_no = 1 and ended_at is not null) as first_engagement_ended,
        (select count(distinct account_id) from engagements where engagement_no = 2)
            as re_engaged_accounts,
        (select count(distinct account_id) from engagements where engagement_no = 2)
        / nullif((select count(distinct account_id) from engagements
            where engagement_no = 1 and ended_at is not null), 0) as re_engagement_rate,
        (select count(*) from visitors where n_candidate_accounts > 1)
            as visitors_with_conflicting_form_fills,
        (select count(*) from emails where is_ambiguous_domain) as emails_with_ambiguous_domain,
        (select count(*) from emails where is_shared_contact_email)
            as emails_shared_by_contacts
    from params as p
)

select * from final
