-- Grain: one row per industry (unknown when the CRM has none): accounts with a staged
-- touchpoint, and the share of them that became clients (account_journeys.became_client).
with journeys as (
    select * from account_journeys
    where furthest_stage_order is not null
),

accounts as (
    select account_id, industry from stg_crm__accounts
),

final as (
    select
        coalesce(a.industry, 'unknown') as industry,
        count(*) as accounts,
        count(*) filter (where j.became_client) as clients,
        avg(j.became_client::int) as client
    from journeys as j
    left join accounts as a on j.account_id = a.account_id
    group by 1
)

select * from final
order by client desc, industry
