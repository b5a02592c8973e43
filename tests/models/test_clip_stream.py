"""The streaming reader: exact coverage across ranks and workers, determinism, resume, bad samples."""

import io
from collections import Counter

import pyarrow.parquet as pq
import pytest
import torch
from open_clip import image_transform
from PIL import Image
from torch.utils.data import DataLoader

from connectors.publish import mark_complete
from models.clip.corpus_index import CorpusIndex, CorpusReadError, RowFilter
from models.clip.stream import (
    EpochPosition,
    PairStream,
    SampleError,
    StreamOptions,
    decode_image,
    uint8_transform,
)
from models.clip.synthetic_corpus import ShapesSpec, shape_records, write_shapes_corpus
from models.clip.tokenizer import TokenizerSpec
from schemas import pairs_to_table

SPEC = ShapesSpec(rows={"train": 50, "test": 6}, shards_per_split=3, rows_per_group=4)
TOKENIZER = TokenizerSpec(kind="bpe", context_length=16)
TRANSFORM = image_transform(32, is_train=True)


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return CorpusIndex.build(str(write_shapes_corpus(tmp_path_factory.mktemp("corpus"), SPEC)))


def make_stream(index, rank=0, world_size=1, slots=1, **options):
    settings = {"batch_size": 4, "with_meta": True, "shuffle_buffer": 8} | options
    return PairStream(
        index, TRANSFORM, TOKENIZER, StreamOptions(**settings), rank, world_size, slots, image_size=32
    )


def batch_ids(stream, workers):
    return [b["ids"] for b in DataLoader(stream, batch_size=None, num_workers=workers)]


def test_two_ranks_times_two_workers_read_every_sample_exactly_once(index):
    seen = Counter()
    per_rank = []
    for rank in (0, 1):
        stream = make_stream(index, rank=rank, world_size=2, slots=2, drop_last=False)
        ids = [i for batch in batch_ids(stream, workers=2) for i in batch]
        per_rank.append(len(ids))
        seen.update(ids)
    assert set(seen) == {r.id for r in shape_records(SPEC) if r.split == "train"}
    assert set(seen.values()) == {1}
    assert per_rank == [25, 25]


def test_filtered_rows_are_covered_once_too(index, tmp_path):
    corpus = write_shapes_corpus(tmp_path, SPEC)
    filtered = CorpusIndex.build(str(corpus), RowFilter(modalities=("ct",)))
    ids = []
    for rank in (0, 1):
        ids += [i for b in batch_ids(make_stream(filtered, rank, 2, 2, drop_last=False), 2) for i in b]
    assert sorted(ids) == sorted(
        r.id for r in shape_records(SPEC) if r.split == "train" and r.modality == "ct"
    )


def test_steps_per_epoch_is_what_every_rank_can_serve(index):
    streams = [make_stream(index, rank=r, world_size=2, slots=2) for r in (0, 1)]
    # 50 rows in 4 slots of 13, 13, 12, 12 (one of each size per rank) -> 3 full batches of 4 each
    assert [s.slot_batches() for s in streams] == [[3, 3], [3, 3]]
    assert {s.steps_per_epoch() for s in streams} == {6}
    assert [len(batch_ids(s, 2)) for s in streams] == [6, 6]


def test_same_seed_same_batches_other_seed_or_epoch_differs(index):
    first = batch_ids(make_stream(index, seed=1), 0)
    assert batch_ids(make_stream(index, seed=1), 0) == first
    assert batch_ids(make_stream(index, seed=2), 0) != first
    stream = make_stream(index, seed=1)
    stream.start_epoch(EpochPosition(epoch=1, positions=[0]))
    assert batch_ids(stream, 0) != first
    images = [b["image"] for b in DataLoader(make_stream(index, seed=1), batch_size=None)]
    again = [b["image"] for b in DataLoader(make_stream(index, seed=1), batch_size=None)]
    assert all(torch.equal(a, b) for a, b in zip(images, again, strict=True))  # crops are seeded per sample


@pytest.mark.parametrize("consumed", [1, 3, 8])
def test_resuming_from_a_position_yields_the_rest_of_the_epoch(index, consumed):
    full = [
        (b["ids"], b["image"])
        for b in DataLoader(make_stream(index, slots=2), batch_size=None, num_workers=2)
    ]
    position = EpochPosition(positions=[0, 0])
    for batch in list(DataLoader(make_stream(index, slots=2), batch_size=None, num_workers=2))[:consumed]:
        position.positions[batch["slot"]] = batch["end"]
        position.batches += 1
    resumed_stream = make_stream(index, slots=2)
    resumed_stream.start_epoch(position)
    resumed = [(b["ids"], b["image"]) for b in DataLoader(resumed_stream, batch_size=None, num_workers=2)]
    assert [ids for ids, _ in resumed] == [ids for ids, _ in full[consumed:]]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(resumed, full[consumed:], strict=True))


def test_a_position_for_another_worker_count_is_refused(index):
    with pytest.raises(CorpusReadError) as e:
        make_stream(index, slots=2).start_epoch(EpochPosition(positions=[0, 0, 0]))
    assert e.value.reason == "resume_layout_mismatch"


def test_alternative_captions_are_drawn_one_per_epoch(index):
    records = {r.id: r for r in shape_records(SPEC)}
    shown: dict[str, set[str]] = {}
    for epoch in range(6):
        stream = make_stream(index)
        stream.start_epoch(EpochPosition(epoch=epoch, positions=[0]))
        for batch in DataLoader(stream, batch_size=None):
            for sample_id, caption in zip(batch["ids"], batch["captions"], strict=True):
                shown.setdefault(sample_id, set()).add(caption)
    with_alternatives = [i for i in shown if records[i].captions]
    assert with_alternatives
    for i in with_alternatives:
        assert shown[i] <= set(records[i].captions)
    assert any(len(shown[i]) > 1 for i in with_alternatives)
    assert all(shown[i] == {records[i].caption} for i in shown if not records[i].captions)


def test_undecodable_images_are_counted_and_replaced_so_batch_counts_hold(tmp_path):
    records = shape_records(ShapesSpec(rows={"train": 12}))
    records[0].image_bytes = b"not an image"  # the first sample of its slot: replaced by the next good one
    records[5].image_bytes = b"\x89PNG\r\n\x1a\n broken"
    records[7].caption = "   "
    (tmp_path / "data").mkdir()
    pq.write_table(
        pairs_to_table(records), tmp_path / "data" / "train-00000-of-00001.parquet", row_group_size=4
    )
    mark_complete(str(tmp_path), "test", "test corpus")
    stream = make_stream(CorpusIndex.build(str(tmp_path)), shuffle=False, drop_last=False)
    batches = list(DataLoader(stream, batch_size=None))
    errors = Counter()
    for b in batches:
        errors.update(b["errors"])
    assert errors == {"image_decode": 2, "caption_empty": 1}
    ids = [i for b in batches for i in b["ids"]]
    assert len(ids) == 12
    assert ids[0] == ids[1] == records[1].id
    assert ids[5] == ids[4] and ids[7] == ids[6]
    assert {records[0].id, records[5].id, records[7].id}.isdisjoint(ids)


def test_a_slot_with_no_decodable_image_is_a_clear_error(tmp_path):
    records = shape_records(ShapesSpec(rows={"train": 3}))
    for r in records:
        r.image_bytes = b"junk"
    (tmp_path / "data").mkdir()
    pq.write_table(pairs_to_table(records), tmp_path / "data" / "train-00000-of-00001.parquet")
    mark_complete(str(tmp_path), "test", "test corpus")
    with pytest.raises(CorpusReadError) as e:
        list(make_stream(CorpusIndex.build(str(tmp_path)), drop_last=False))
    assert e.value.reason == "no_decodable_images"


def png(size):
    out = io.BytesIO()
    Image.new("L", size, 128).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    "data, max_pixels, reason",
    [
        (b"", 10**6, "image_missing"),
        (b"GIF89a...", 10**6, "image_decode"),
        (png((40, 30)), 1000, "image_too_large"),
    ],
)
def test_decode_image_reasons(data, max_pixels, reason):
    with pytest.raises(SampleError) as e:
        decode_image(data, 32, max_pixels)
    assert e.value.reason == reason


def test_decode_image_gives_rgb_and_shrinks_large_jpegs_at_decode_time():
    assert decode_image(png((40, 30)), 32, 10**6).mode == "RGB"
    out = io.BytesIO()
    Image.new("RGB", (800, 600), (10, 200, 30)).save(out, format="JPEG")
    image = decode_image(out.getvalue(), 160, 10**7)
    assert min(image.size) >= 160 and image.size[0] < 800


def test_a_foreign_corpus_without_alternative_captions_streams(tmp_path):
    records = shape_records(ShapesSpec(rows={"train": 8}))
    table = pairs_to_table(records).replace_schema_metadata(None).select(["id", "image", "caption", "split"])
    pq.write_table(table, tmp_path / "part-0.parquet", row_group_size=3)
    batches = list(make_stream(CorpusIndex.build(str(tmp_path)), drop_last=False))
    shown = {i: c for b in batches for i, c in zip(b["ids"], b["captions"], strict=True)}
    assert shown == {r.id: r.caption for r in records}


def test_formats_outside_the_allowed_list_are_not_opened():
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    with pytest.raises(SampleError) as e:
        decode_image(eps, 32, 10**6)
    assert e.value.reason == "image_decode" and "allowed format" in str(e.value)


def test_uint8_worker_transform_plus_device_normalisation_equals_open_clips_transform():
    transform = image_transform(48, is_train=True, mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6))
    worker, normalize = uint8_transform(transform)
    image = Image.effect_mandelbrot((64, 50), (-2, -1.2, 1, 1.2), 40).convert("RGB")
    torch.manual_seed(3)
    expected = transform(image)
    torch.manual_seed(3)
    half = worker(image)
    assert half.dtype == torch.uint8
    assert torch.equal(normalize(half[None])[0], expected)
