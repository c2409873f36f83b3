"""On the committed sample, the pipeline agrees with the generator's ground truth."""

from __future__ import annotations

import pytest

from tests.conftest import SAMPLE

TRUTH = SAMPLE / "truth"


@pytest.fixture
def truth(sample_con):
    """Truth identifiers that occur in the loaded data, joined to what the pipeline linked."""
    return sample_con.execute(f"""
        WITH seen AS (
            SELECT DISTINCT 'email' AS identifier_type, email AS identifier
            FROM touchpoints WHERE email IS NOT NULL
            UNION SELECT 'email', email FROM stg_crm__contacts WHERE email IS NOT NULL
            UNION SELECT 'anonymous_id', anonymous_id FROM touchpoints
            WHERE anonymous_id IS NOT NULL
        )
        SELECT t.identifier_type, t.account_id AS true_account, t.resolvable,
               m.account_id AS linked_account
        FROM read_csv('{TRUTH}/identities.csv', all_varchar = true) t
        JOIN seen USING (identifier_type, identifier)
        LEFT JOIN identity_map m USING (identifier_type, identifier)
    """).df()


def test_stitching_precision_is_at_least_0_995(truth):
    linked = truth[truth.linked_account.notna()]
    precision = (linked.linked_account == linked.true_account).mean()
    assert len(linked) > 1000 and precision >= 0.995


def test_stitching_recall_of_resolvable_identities_is_at_least_0_99(truth):
    resolvable = truth[truth.resolvable == "true"]
    recall = (resolvable.linked_account == resolvable.true_account).mean()
    assert len(resolvable) > 1000 and recall >= 0.99


def test_furthest_stage_agrees_for_at_least_98_percent_of_accounts(sample_con):
    agree, n = sample_con.execute(f"""
        SELECT count(*) FILTER (WHERE t.furthest_stage IS NOT DISTINCT FROM a.furthest_stage),
               count(*)
        FROM read_csv('{TRUTH}/accounts.csv') t JOIN account_journeys a USING (account_id)
    """).fetchall()[0]
    assert n == 400 and agree / n >= 0.98


def test_the_pipeline_never_overstates_how_far_an_account_got(sample_con):
    # Where it disagrees, it is because some touchpoints are unresolvable by the
    # contract's rules (an anonymous visitor, a free-mail address), never a wrong link.
    overstated = sample_con.execute(f"""
        SELECT count(*)
        FROM read_csv('{TRUTH}/accounts.csv') t
        JOIN account_journeys a USING (account_id)
        LEFT JOIN stage_ladder l ON l.stage = t.furthest_stage
        WHERE a.furthest_stage_order > l.stage_order
           OR (t.furthest_stage IS NULL AND a.furthest_stage IS NOT NULL)
    """).fetchall()[0][0]
    wrong_links = sample_con.execute(f"""
        SELECT count(*) FROM read_parquet('{TRUTH}/touchpoints.parquet') t
        JOIN touchpoints p USING (source, source_id)
        WHERE p.account_id IS DISTINCT FROM t.account_id AND p.account_id IS NOT NULL
    """).fetchall()[0][0]
    assert (overstated, wrong_links) == (0, 0)
