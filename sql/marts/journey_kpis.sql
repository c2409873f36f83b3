-- Grain: one row: the headline numbers of the build, defined once for the CLI,
-- the reports, the Prefect artifacts and the notebooks.
-- The three questions a B2B firm asks first:
-- 1. prospect_to_client_rate = accounts that became clients (reached client)
--                              / prospects (accounts that reached awareness).
-- 2. between engagements and back: clients_between_engagements_ever = accounts ever in
--    the between-engagements stage (stage_occupancy, from account_stage_history: an
--    engagement ended by completion); re_engagement_rate = accounts with
--    two or more engagements / accounts whose first engagement has ended (contract
--    section 3); median_gap_days = median days between two engagements of those back.
-- 3. advocacy: former_clients_advocating / former_clients_ever (accounts ever in the
--    former-client stage) and advocates_between_engagements / clients_between_
--    engagements_ever: referrals or case studies given in that status (advocates mart).
-- Every "accounts in a stage" figure comes from account_stage_history (stage_occupancy):
-- the one post-sale rule is sql/states/int_post_sale_phases.sql.
-- "Client" has one meaning per column (account_journeys): became_client (ever) and
-- is_current_client (now; the churn population).
with params as (
    select * from run_parameters
),

journeys as (
    select * from account_journeys
),

touchpoints as (
    select t.*
    from int_touchpoints_staged as t, params as p
    where t.occurred_at <= p.as_of
),

visitors as (
    select * from int_visitors_resolved
),

emails as (
    select * from int_emails_resolved
),

occupancy as (
    select
        max(accounts_ever_in) filter (where stage = 'between_engagements') as between_ever,
        max(accounts_ever_in) filter (where stage = 'former_client') as former_ever
    from stage_occupancy
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
        (select count(*) from journeys where furthest_stage_order is not null) as prospects,
        (select count(*) from journeys where became_client) as clients_ever,
        (select count(*) from journeys where became_client)
        / nullif((select count(*) from journeys where furthest_stage_order is not null), 0)
            as prospect_to_client_rate,
        (select count(*) from journeys where is_current_client) as current_clients,
        (select count(*) from journeys where current_stage = 'former_client') as former_clients,
        o.between_ever as clients_between_engagements_ever,
        o.former_ever as former_clients_ever,
        (select median(gap_days) from engagements where engagement_no > 1) as median_gap_days,
        (select count(*) from advocates) as advocates,
        (select count(*) from advocates where while_former_client)
            as former_clients_advocating,
        (select count(*) from advocates where while_former_client)
        / nullif(o.former_ever, 0) as former_client_advocacy_rate,
        (select count(*) from advocates where while_between_engagements)
            as advocates_between_engagements,
        (select count(*) from advocates
            where not while_former_client and not while_between_engagements)
            as advocates_otherwise,
        (select count(*) from advocates where while_between_engagements)
        / nullif(o.between_ever, 0) as between_engagements_advocacy_rate,
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
    cross join occupancy as o
)

select * from final
