"""The similarity figure: the hand-written dHash equals imagehash's, features compared relative to the collection,
blockwise pairs equal to the whole matrix, groups by their weakest link, and the keeper chosen as documented."""

import imagehash
import numpy as np
import pytest
from PIL import Image

from resnext_gui.core import similarity as S
from resnext_gui.core.preprocess import Preprocessing, load_and_prepare, load_image
from resnext_gui.core.similarity import (
    FeatureSpace,
    KeeperFacts,
    SimilarityIndex,
    choose_keeper,
    combine,
    dhash,
    hash_distance,
    hash_similarity,
)


def reference_dhash(image) -> int:
    return int(str(imagehash.dhash(image)), 16)


@pytest.mark.parametrize("name", ["chelsea", "astronaut", "coffee", "rocket_jpg"])
def test_dhash_is_bit_for_bit_imagehash_on_real_photos(photos, name):
    with Image.open(photos[name]) as im:
        expected = reference_dhash(im)
        assert dhash(im) == expected
        for mode in ("L", "RGBA", "P"):  # the greyscale conversion is Pillow's own, from any mode
            other = im.convert(mode)
            assert dhash(other) == reference_dhash(other)
    # and what the pipeline keeps: the hash of the decoded, oriented photo, from the same decode as the model's input
    assert load_and_prepare(photos[name], Preprocessing(232, 224)).dhash == expected
    assert dhash(load_image(photos[name]).pixels()) == expected


def test_dhash_of_edited_photos_and_odd_sizes(photos):
    with Image.open(photos["coffee"]) as im:
        im = im.convert("RGB")
        edits = [im.resize((17, 9)), im.resize((9, 8)), im.crop((0, 0, 3, 2)), im.rotate(30, expand=True),
                 Image.fromarray(255 - np.asarray(im)), Image.new("RGB", (40, 30), (7, 7, 7))]
        for edited in edits:
            assert dhash(edited) == reference_dhash(edited)
        assert dhash(edits[-1]) == 0  # a flat picture: no pixel brighter than its neighbour


def test_hash_similarity_scale():
    a = np.array([0xFFFF_FFFF_0000_0000, 0, 2**64 - 1], dtype=np.uint64)
    assert hash_distance(a[0], a).tolist() == [0, 32, 32]
    assert hash_distance(a[1], a[2:]).tolist() == [64]
    assert hash_similarity([0, 1, 16, 32, 64]).tolist() == [1.0, 1 - 1 / 32, 0.5, 0.0, 0.0]
    assert combine(-1.0, 1.0) == 1.0  # the same hash: 1.0, whatever the features say
    assert combine(0.9, 0.5) == pytest.approx(0.7)  # features closer than the hash: half-way towards them
    assert combine(0.2, 0.5) == 0.5  # features further: the hash's figure
    assert S.as_hashes([2**64 - 1, -1, 5]).tolist() == [2**64 - 1, 2**64 - 1, 5]  # SQLite's signed form too


def collection(n=60, dim=64, seed=0, common=30.0):
    """Vectors like pooled activations: a large common part, each photo's own smaller part, all positive."""
    rng = np.random.default_rng(seed)
    own = rng.random((n, dim)).astype(np.float32)
    return (common + own).astype(np.float32), rng


def test_features_are_compared_relative_to_the_collection():
    x, rng = collection()
    x[1] = x[0] + rng.normal(0, 0.01, x.shape[1])  # photo 1 is a near-copy of photo 0
    raw = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert (raw @ raw.T).min() > 0.97  # raw cosine: every pair looks alike
    space = FeatureSpace.fit(x)
    v = space.embed(x)
    f = v @ v.T
    assert f[0, 1] > 0.95
    others = f[0, 2:]
    assert others.max() < 0.6 and abs(others.mean()) < 0.1  # the others are unrelated to it, as they are
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_few_photos_leave_the_hash_alone_to_decide():
    x, _ = collection(n=2)
    hashes = [0x0F0F, 0x0F0E]  # one bit apart
    one = SimilarityIndex(x[:1], hashes[:1])
    assert one.similarities(0).tolist() == [1.0]
    two = SimilarityIndex(x, hashes)
    assert two.similarity(0, 1) == pytest.approx(1 - 1 / 32)  # two photos: opposite directions, f = -1 -> h
    same = SimilarityIndex(np.stack([x[0]] * 3), [1, 1, 1 << 40])  # three times the same features
    assert same.similarity(0, 2) == pytest.approx(float(hash_similarity(2)))  # no direction: f = 0, (0 + h)/2 < h


@pytest.mark.parametrize("threshold", [0.3, 0.55, 0.8])
@pytest.mark.parametrize("shape, verify_share", [((97, 48), None), ((230, 160), 1.0), ((230, 160), 0.0)],
                         ids=["cosines-whole", "bounded-then-pairs", "bounded-then-tiles"])
def test_blockwise_pairs_are_exactly_those_of_the_whole_matrix(monkeypatch, threshold, shape, verify_share):
    """Every path of ``pairs``: cosines computed whole (few directions), or bounded first (more than
    HEAD_DIMS + 16 directions) and then computed for the pairs that pass, or for the whole tile."""
    x, rng = collection(n=shape[0], dim=shape[1], seed=3)
    for k in range(0, 90, 9):  # some near-copies, some with the same hash, so every kind of link is there
        x[k + 1] = x[k] + rng.normal(0, 0.02, x.shape[1])
    hashes = rng.integers(0, 2**63, len(x)).astype(np.uint64)
    hashes[40:45] = hashes[40] ^ np.array([0, 1, 3, 7, 15], dtype=np.uint64)
    index = SimilarityIndex(x, hashes)
    assert (index.space.dims > S.HEAD_DIMS + 16) == (verify_share is not None)
    full = np.stack([index.similarities(i) for i in range(len(x))])
    expected = {(i, j) for i in range(len(x)) for j in range(i + 1, len(x)) if full[i, j] >= threshold}
    monkeypatch.setattr(S, "BLOCK_ROWS", 10)
    monkeypatch.setattr(S, "BLOCK_COLS", 7)
    if verify_share is not None:
        monkeypatch.setattr(S, "VERIFY_SHARE", verify_share)
    got = {}
    for ii, jj, ss in index.pairs(threshold):
        for i, j, s in zip(ii.tolist(), jj.tolist(), ss.tolist()):
            assert (i, j) not in got
            got[(i, j)] = s
    assert set(got) == expected and len(expected) > 5
    assert all(got[p] == pytest.approx(full[p], abs=1e-5) for p in got)


def test_groups_join_chains_and_report_the_weakest_link():
    x, rng = collection(n=40, dim=32, seed=5)
    hashes = rng.integers(0, 2**63, len(x)).astype(np.uint64)
    hashes[[1, 2]] = hashes[0] ^ np.array([1, 3], dtype=np.uint64)  # 0-1: 1 bit, 1-2: 1 bit, 0-2: 2 bits
    hashes[10] = hashes[11]  # 10 and 11: the same hash
    x[11] = x[10]
    index = SimilarityIndex(x, hashes)
    groups = index.groups(0.9)
    assert [g.members for g in groups] == [[10, 11], [0, 1, 2]]  # the surest first
    assert groups[0].similarity == 1.0
    links = sorted([index.similarity(0, 1), index.similarity(1, 2), index.similarity(0, 2)], reverse=True)
    assert groups[1].similarity == pytest.approx(links[1])  # the spanning tree's weaker link of the best two
    assert index.groups(1.0) == [S.Group([10, 11], 1.0)]
    rest = rng.integers(2**40, 2**63, 35).astype(np.uint64)
    chained = SimilarityIndex(x, np.concatenate([np.array([0, 1, 3, 7, 15], dtype=np.uint64), rest]))
    # 0-1-2-3-4 differ by one bit from the next: one chain at 1 - 1/32, though 0 and 4 are four bits apart
    assert [0, 1, 2, 3, 4] in [g.members for g in chained.groups(0.96)]
    assert chained.similarity(0, 4) < 0.96


def test_most_similar_ranks_excludes_itself_and_breaks_ties_by_order():
    x, _ = collection(n=8, dim=16, seed=2)
    x[5] = x[2]
    x[6] = x[2]
    hashes = np.array([9, 100, 4, 200, 300, 4, 4, 400], dtype=np.uint64)
    index = SimilarityIndex(x, hashes)
    ranked = index.most_similar(2, top=3)
    assert [j for j, _ in ranked[:2]] == [5, 6] and ranked[0][1] == ranked[1][1] == 1.0
    assert 2 not in [j for j, _ in index.most_similar(2, top=None)]
    assert len(index.most_similar(2, top=None)) == 7
    s = [v for _, v in index.most_similar(0, top=None)]
    assert s == sorted(s, reverse=True)
    assert [j for j, _ in index.most_similar(2, top=2, among=[6, 7, 5])] == [5, 6]


def test_keeper_is_most_pixels_then_newest_then_first_path():
    big_old = KeeperFacts("b.jpg", 4000 * 3000, 10)
    big_new = KeeperFacts("c.jpg", 4000 * 3000, 20)
    small_newest = KeeperFacts("a.jpg", 2000 * 1500, 30)
    assert choose_keeper([small_newest, big_old]) == 1  # pixels first
    assert choose_keeper([big_old, small_newest, big_new]) == 2  # then the newest
    twin = KeeperFacts("a-copy.jpg", 4000 * 3000, 20)
    assert choose_keeper([big_new, twin]) == 1  # then the path
    with pytest.raises(ValueError):
        choose_keeper([])


def test_groups_on_several_threads_are_the_groups_on_one(monkeypatch):
    x, rng = collection(n=300, dim=40, seed=11)
    hashes = rng.integers(0, 2**63, len(x)).astype(np.uint64)
    for k in range(0, 280, 7):  # chains and pairs across row blocks
        x[k + 3] = x[k] + rng.normal(0, 0.01, x.shape[1])
        hashes[k + 5] = hashes[k] ^ np.uint64(1 << (k % 64))
    index = SimilarityIndex(x, hashes)
    monkeypatch.setattr(S, "BLOCK_ROWS", 16)
    monkeypatch.setattr(S, "BLOCK_COLS", 32)
    monkeypatch.setattr(S, "THREADS", 1)
    one = index.groups(0.6)
    monkeypatch.setattr(S, "THREADS", 3)
    monkeypatch.setattr(S.os, "cpu_count", lambda: 4)
    assert index.groups(0.6) == one and len(one) >= 20
