"""Representative journeys: medoids are real paths, every account is covered once."""

from __future__ import annotations

import numpy as np

from journey_mining import representatives


def test_k_medoids_finds_the_two_obvious_groups():
    # two tight groups: paths 0-2 close to each other, 3-4 close to each other
    d = np.array([[0, .1, .1, .9, .9], [.1, 0, .2, .9, .9], [.1, .2, 0, .8, .9],
                  [.9, .9, .8, 0, .1], [.9, .9, .9, .1, 0]], float)
    medoids, labels = representatives.k_medoids(d, np.array([5, 1, 1, 3, 1.]), 2)
    assert sorted(medoids.tolist()) == [0, 3]
    assert labels.tolist() in ([0, 0, 0, 1, 1], [1, 1, 1, 0, 0])
    assert representatives.weighted_silhouette(d, labels, np.ones(5)) > 0.7


def test_representatives_cover_every_account_with_a_real_path(sample_con):
    frame = representatives.representative_journeys(sample_con)
    paths = representatives.account_paths(sample_con, "stage")
    for level, part in frame.groupby("level"):
        assert 2 <= len(part) <= 6
        total = representatives.account_paths(sample_con, level).accounts.sum()
        assert part.accounts.sum() == total
        assert abs(part.coverage.sum() - 1) < 1e-9
    stage = frame[frame.level == "stage"]
    assert set(stage.medoid_path) <= set(paths.path)
    assert (stage.became_client <= stage.accounts).all()
