"""Property-based tests (hypothesis): splitters and getters never lose, duplicate or leak an item."""
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from learnkit.data.block import DataBlock
from learnkit.data.blocks import CategoryBlock, TransformBlock
from learnkit.data.splitters import ColSplitter, EndSplitter, IndexSplitter, RandomSplitter, TrainTestSplitter

FAST = settings(max_examples=40, deadline=None)
items_st = st.lists(st.integers(-1000, 1000), min_size=2, max_size=60)


def _is_partition(train, valid, n):
    return sorted(list(train) + list(valid)) == list(range(n))


@FAST
@given(items_st, st.floats(0.05, 0.95), st.integers(0, 2 ** 16))
def test_random_splitter_partitions_the_items(items, pct, seed):
    train, valid = RandomSplitter(valid_pct=pct, seed=seed)(items)
    assert _is_partition(train, valid, len(items))
    assert RandomSplitter(valid_pct=pct, seed=seed)(items) == (train, valid)


@FAST
@given(items_st, st.floats(0.05, 0.95), st.booleans())
def test_end_and_train_test_splitters_partition_the_items(items, pct, last):
    assert _is_partition(*EndSplitter(valid_pct=pct, valid_last=last)(items), len(items))
    assert _is_partition(*TrainTestSplitter(test_size=pct, random_state=0)(items), len(items))


@FAST
@given(st.data())
def test_index_and_col_splitters_partition_the_items(data):
    n = data.draw(st.integers(2, 40))
    valid = data.draw(st.sets(st.integers(0, n - 1), max_size=n - 1))
    assert _is_partition(*IndexSplitter(sorted(valid))(list(range(n))), n)
    df = pd.DataFrame({"x": range(n), "is_valid": [i in valid for i in range(n)]})
    train, v = ColSplitter()(df)
    assert _is_partition(train, v, n) and set(v) == valid


@FAST
@given(st.lists(st.text(min_size=1, max_size=3), min_size=4, max_size=40, unique=True), st.floats(0.1, 0.5))
def test_datablock_getters_keep_every_item_once(names, pct):
    dsets = DataBlock(blocks=(TransformBlock, CategoryBlock(vocab=[0, 1])), get_x=lambda s: s, get_y=lambda s: len(s) % 2,
                      splitter=RandomSplitter(pct, seed=0)).datasets(names)
    train, valid = dsets.splits
    assert _is_partition(train, valid, len(names)) and not set(train) & set(valid)
