"""Which rows a run reads: split/licence/modality/concept filters, statistics push-down, the epoch partition."""

from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest

from connectors.publish import mark_complete
from models.clip.corpus_index import CorpusIndex, CorpusReadError, RowFilter, iter_captions
from models.clip.synthetic_corpus import ShapesSpec, shape_records, write_shapes_corpus
from schemas import pairs_to_table

SPEC = ShapesSpec(rows={"train": 40, "validation": 8, "test": 12}, shards_per_split=2, rows_per_group=4)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_shapes_corpus(tmp_path_factory.mktemp("corpus"), SPEC)


def kept_ids(index: CorpusIndex) -> list[str]:
    ids = []
    for unit in index.units:
        table = pq.ParquetFile(index.shards[unit.shard]).read_row_group(unit.row_group, columns=["id"])
        ids.extend(table.column("id").to_numpy(zero_copy_only=False)[unit.rows].tolist())
    return ids


def test_split_is_chosen_by_shard_name_without_reading(corpus):
    index = CorpusIndex.build(str(corpus), RowFilter(splits=("test",)))
    assert index.stats["shards_skipped_by_name"] == 4
    assert sorted(kept_ids(index)) == sorted(r.id for r in shape_records(SPEC) if r.split == "test")


@pytest.mark.parametrize(
    "row_filter, keep",
    [
        (RowFilter(license_groups=("commercial",)), lambda r: r.license_group == "commercial"),
        (RowFilter(modalities=("mri",)), lambda r: r.modality == "mri"),
        (RowFilter(concepts=("C0000001",)), lambda r: any(c.cui == "C0000001" for c in r.concepts)),
        (
            RowFilter(splits=("train", "test"), license_groups=("noncommercial",), modalities=("ct",)),
            lambda r: (
                r.split in ("train", "test") and r.license_group == "noncommercial" and r.modality == "ct"
            ),
        ),
    ],
)
def test_filters_keep_exactly_the_matching_rows(corpus, row_filter, keep):
    expected = sorted(r.id for r in shape_records(SPEC) if (r.split in row_filter.splits) and keep(r))
    index = CorpusIndex.build(str(corpus), row_filter)
    assert expected and sorted(kept_ids(index)) == expected


def test_row_group_statistics_skip_groups_that_cannot_match(tmp_path):
    # rows sorted by modality: each 4-row group holds one modality, so half the groups are ruled out unread
    records = sorted(shape_records(ShapesSpec(rows={"train": 16})), key=lambda r: r.modality)
    (tmp_path / "data").mkdir()
    pq.write_table(
        pairs_to_table(records), tmp_path / "data" / "train-00000-of-00001.parquet", row_group_size=4
    )
    mark_complete(str(tmp_path), "test", "test corpus")
    index = CorpusIndex.build(str(tmp_path), RowFilter(modalities=("ct",)))
    assert index.stats["row_groups_skipped_by_stats"] == 2
    assert index.num_rows == 8


def test_shards_not_named_by_split_are_filtered_on_the_column(tmp_path):
    records = shape_records(ShapesSpec(rows={"train": 6, "test": 4}))
    (tmp_path / "data").mkdir()
    pq.write_table(pairs_to_table(records), tmp_path / "data" / "mixed.parquet", row_group_size=3)
    mark_complete(str(tmp_path), "test", "test corpus")
    index = CorpusIndex.build(str(tmp_path), RowFilter(splits=("test",)))
    assert sorted(kept_ids(index)) == sorted(r.id for r in records if r.split == "test")


def test_empty_corpus_folder_is_a_clear_error(tmp_path):
    with pytest.raises(CorpusReadError) as e:
        CorpusIndex.build(str(tmp_path))
    assert e.value.reason == "corpus_empty"


@pytest.mark.parametrize("num_slots", [1, 3, 4, 7])
def test_epoch_slots_cover_every_row_once_and_differ_by_at_most_one(corpus, num_slots):
    index = CorpusIndex.build(str(corpus))
    for epoch in (0, 1):
        seen = Counter()
        sizes = []
        for slot in range(num_slots):
            pieces = index.epoch_slot_pieces(num_slots, slot, seed=3, epoch=epoch, shuffle=True)
            sizes.append(sum(len(p) for p in pieces))
            for p in pieces:
                unit = index.units[p.unit]
                seen.update((unit.shard, unit.row_group, int(r)) for r in unit.rows[p.start : p.stop])
        assert sum(seen.values()) == index.num_rows == len(seen)
        assert max(sizes) - min(sizes) <= 1


def test_epochs_shuffle_row_groups_differently_but_reproducibly(corpus):
    index = CorpusIndex.build(str(corpus))

    def order(seed, epoch):
        return [p.unit for p in index.epoch_slot_pieces(1, 0, seed=seed, epoch=epoch, shuffle=True)]

    assert order(0, 0) == order(0, 0)
    assert order(0, 0) != order(0, 1)
    assert sorted(order(0, 0)) == sorted(order(0, 1))
    assert [p.unit for p in index.epoch_slot_pieces(1, 0, 0, 0, shuffle=False)] == list(
        range(len(index.units))
    )


def test_iter_captions_reads_captions_and_alternatives_of_kept_rows(corpus):
    index = CorpusIndex.build(str(corpus), RowFilter(splits=("validation",)))
    records = [r for r in shape_records(SPEC) if r.split == "validation"]
    expected = Counter([r.caption for r in records] + [c for r in records for c in r.captions])
    assert Counter(iter_captions(index)) == expected
    assert np.all([len(u.rows) > 0 for u in index.units])


def foreign_table(records, drop):
    table = pairs_to_table(records).replace_schema_metadata(None)
    return table.drop_columns(drop)


def test_a_foreign_parquet_corpus_with_the_needed_columns_is_read(tmp_path):
    records = shape_records(ShapesSpec(rows={"train": 6, "test": 2}))
    keep = {"id", "image", "caption", "split"}
    pq.write_table(
        foreign_table(records, [n for n in pairs_to_table(records).column_names if n not in keep]),
        tmp_path / "part-0.parquet",
    )
    index = CorpusIndex.build(str(tmp_path))
    assert sorted(kept_ids(index)) == sorted(r.id for r in records if r.split == "train")
    assert Counter(iter_captions(index)) == Counter(r.caption for r in records if r.split == "train")


def test_a_shard_without_a_needed_column_is_a_clear_error(tmp_path):
    records = shape_records(ShapesSpec(rows={"train": 4}))
    (tmp_path / "data").mkdir()
    pq.write_table(foreign_table(records, ["modality"]), tmp_path / "data" / "train-00000-of-00001.parquet")
    CorpusIndex.build(str(tmp_path))  # no modality filter: fine
    with pytest.raises(CorpusReadError) as e:
        CorpusIndex.build(str(tmp_path), RowFilter(modalities=("ct",)))
    assert e.value.reason == "column_missing" and "modality" in str(e.value)


def test_several_corpora_are_read_as_one(corpus, tmp_path):
    other = write_shapes_corpus(tmp_path / "other", SPEC)
    one = CorpusIndex.build(str(corpus), RowFilter(splits=("train",)))
    both = CorpusIndex.build([str(corpus), str(other)], RowFilter(splits=("train",)))
    assert both.num_rows == 2 * one.num_rows
    assert len(both.shards) == 2 * len(one.shards)
