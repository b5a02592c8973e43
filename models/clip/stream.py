"""A streaming, resumable reader of corpus pairs for a torch DataLoader.

Each (rank, DataLoader worker) reads its own slot of the epoch (see `corpus_index`), so no row is read twice
and none is skipped. A slot's stream is cut into windows of about `shuffle_buffer` rows; a window is read
(only the id, caption(s) and image columns), permuted with a generator seeded by (seed, epoch, slot, window),
decoded and augmented in the worker, and batched there. Everything random about a sample (its place, which
of its K captions it shows, its crop) follows from those seeds, so a run is reproducible and a resumed run
sees exactly the batches the uninterrupted one would have: the resume position is, per slot, how many
stream positions were consumed, plus which worker is due next (the DataLoader serves workers round-robin).

A sample whose image cannot be decoded (or whose caption is empty) is counted under a reason code and
replaced by the slot's previous good sample, so every rank still yields the planned number of batches and
DDP never waits on a rank that ran dry.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from connectors import fs
from connectors.images import ALLOWED_FORMATS, draft_jpeg
from models.clip.corpus_index import CorpusIndex, CorpusReadError, Piece
from models.clip.tokenizer import TokenizerSpec
from schemas.errors import ReasonError

log = logging.getLogger(__name__)

READ_COLUMNS = ["id", "caption", "captions", "image"]
DEFAULT_MAX_IMAGE_PIXELS = 64_000_000


class SampleError(ReasonError):
    """A row that cannot become a training sample (`image_missing`, `image_decode`, ...)."""


@dataclass(frozen=True)
class StreamOptions:
    batch_size: int
    seed: int = 0
    shuffle: bool = True
    shuffle_buffer: int = 2048
    drop_last: bool = True
    sample_captions: bool = True  # records with K alternative captions show one, drawn per epoch
    with_meta: bool = False  # add ids and captions to each batch (evaluation)
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS


@dataclass
class EpochPosition:
    """Where a rank stands in an epoch: batches consumed and, per loader slot, stream positions consumed."""

    epoch: int = 0
    batches: int = 0
    positions: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batches": self.batches, "positions": list(self.positions)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpochPosition:
        return cls(int(data["epoch"]), int(data["batches"]), [int(p) for p in data["positions"]])


class PairStream(IterableDataset):
    """Batches {"image", "text", "slot", "end", "errors"[, "ids", "captions"]} for one rank."""

    def __init__(
        self,
        index: CorpusIndex,
        transform: Callable[[Image.Image], torch.Tensor],
        tokenizer: TokenizerSpec,
        options: StreamOptions,
        rank: int = 0,
        world_size: int = 1,
        slots_per_rank: int = 1,
        image_size: int | None = None,
    ) -> None:
        self.index = index
        self.transform = transform
        self.tokenizer_spec = tokenizer
        self.options = options
        self.rank = rank
        self.world_size = world_size
        self.slots_per_rank = max(1, slots_per_rank)
        self.image_size = image_size
        self.position = EpochPosition(positions=[0] * self.slots_per_rank)

    # -- planning ------------------------------------------------------------------------------------
    @property
    def num_slots(self) -> int:
        return self.world_size * self.slots_per_rank

    def slot_batches(self, rank: int | None = None) -> list[int]:
        """Batches each of a rank's slots yields in a full epoch."""
        rank = self.rank if rank is None else rank
        sizes = self.index.slot_sizes(self.num_slots)[
            [self._global_slot(w, rank) for w in range(self.slots_per_rank)]
        ]
        b = self.options.batch_size
        return [int(s // b) if self.options.drop_last else int(-(-s // b)) for s in sizes]

    def _global_slot(self, slot: int, rank: int | None = None) -> int:
        # ranks interleave, so the larger slots (the first `rows % slots`) spread over ranks evenly
        return slot * self.world_size + (self.rank if rank is None else rank)

    def steps_per_epoch(self) -> int:
        """Batches every rank can serve in an epoch (the same number on all ranks)."""
        return min(sum(self.slot_batches(r)) for r in range(self.world_size))

    def start_epoch(self, position: EpochPosition) -> None:
        """Set where the next iteration starts; call before creating the DataLoader iterator."""
        if len(position.positions) != self.slots_per_rank:
            raise CorpusReadError(
                "resume_layout_mismatch",
                f"the saved data position has {len(position.positions)} loader workers per rank; this run has "
                f"{self.slots_per_rank}. Resume with the same --workers and number of processes.",
            )
        self.position = EpochPosition(position.epoch, position.batches, list(position.positions))

    # -- iteration -----------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        rotation = self.position.batches % self.slots_per_rank
        if info is None:
            order = [(rotation + k) % self.slots_per_rank for k in range(self.slots_per_rank)]
            return _round_robin([self._slot_batches(slot) for slot in order])
        if info.num_workers != self.slots_per_rank:
            raise CorpusReadError(
                "loader_workers_mismatch",
                f"DataLoader has {info.num_workers} workers, the stream was planned for {self.slots_per_rank}",
            )
        return self._slot_batches((info.id + rotation) % self.slots_per_rank)

    def _slot_batches(self, slot: int) -> Iterator[dict[str, Any]]:
        tokenizer = self.tokenizer_spec.load()
        b = self.options.batch_size
        images: list[torch.Tensor] = []
        captions: list[str] = []
        ids: list[str] = []
        errors: Counter[str] = Counter()
        for position, sample_id, image, caption, sample_errors in self._slot_samples(slot):
            errors.update(sample_errors)
            images.append(image)
            captions.append(caption)
            ids.append(sample_id)
            if len(images) == b:
                yield self._batch(images, captions, ids, slot, position + 1, errors, tokenizer)
                images, captions, ids, errors = [], [], [], Counter()
        if images and not self.options.drop_last:
            yield self._batch(images, captions, ids, slot, position + 1, errors, tokenizer)

    def _batch(self, images, captions, ids, slot, end, errors, tokenizer) -> dict[str, Any]:
        batch = {
            "image": torch.stack(images),
            "text": tokenizer(captions),
            "slot": slot,
            "end": end,
            "errors": dict(errors),
        }
        if self.options.with_meta:
            batch["ids"] = ids
            batch["captions"] = captions
        return batch

    def _slot_samples(self, slot: int) -> Iterator[tuple[int, str, torch.Tensor, str, Counter[str]]]:
        """(position, id, image tensor, caption, errors) per stream position, bad samples substituted."""
        pending: list[tuple[int, Counter[str]]] = []  # bad positions met before the slot's first good sample
        last_good: tuple[str, torch.Tensor, str] | None = None
        for position, row, caption_draw, seed in self._slot_rows(slot):
            try:
                image, caption = self._prepare(row, caption_draw, seed)
            except SampleError as e:
                log.warning("skipping sample %s (%s): %s", row["id"], e.reason, e)
                bad = Counter({e.reason: 1})
                if last_good is None:
                    pending.append((position, bad))
                else:
                    yield (position, *last_good, bad)
                continue
            last_good = (row["id"], image, caption)
            for bad_position, bad in pending:
                yield (bad_position, *last_good, bad)
            pending = []
            yield (position, *last_good, Counter())
        if pending:
            raise CorpusReadError(
                "no_decodable_images",
                f"loader slot {slot} of rank {self.rank} met {len(pending)} samples and could decode none",
            )

    def _slot_rows(self, slot: int) -> Iterator[tuple[int, dict[str, Any], float, int]]:
        opts = self.options
        global_slot = self._global_slot(slot)
        epoch = self.position.epoch
        start = self.position.positions[slot]
        pieces = self.index.epoch_slot_pieces(self.num_slots, global_slot, opts.seed, epoch, opts.shuffle)
        reader = _RowGroupReader(self.index)
        position = 0
        try:
            for window_number, window in enumerate(_windows(pieces, opts.shuffle_buffer)):
                n = sum(len(p) for p in window)
                if position + n <= start:
                    position += n  # consumed before the checkpoint: not even read
                    continue
                rng = np.random.default_rng([opts.seed, epoch, global_slot, window_number, 0xB0F])
                order = rng.permutation(n) if opts.shuffle else np.arange(n)
                caption_draws = rng.random(n)
                seeds = rng.integers(0, 2**62, size=n)
                table = reader.read(window)
                columns = {name: table.column(name).to_pylist() for name in table.column_names}
                for j in range(max(0, start - position), n):
                    k = int(order[j])
                    row = {name: values[k] for name, values in columns.items()}
                    yield position + j, row, float(caption_draws[j]), int(seeds[j])
                position += n
        finally:
            reader.close()

    def _prepare(self, row: dict[str, Any], caption_draw: float, seed: int) -> tuple[torch.Tensor, str]:
        alternatives = [c for c in (row.get("captions") or []) if c and c.strip()]
        if self.options.sample_captions and alternatives:
            caption = alternatives[int(caption_draw * len(alternatives))]
        else:
            caption = row.get("caption") or ""
        if not caption.strip():
            raise SampleError("caption_empty", "no caption text")
        image = decode_image(
            (row.get("image") or {}).get("bytes"), self.image_size, self.options.max_image_pixels
        )
        # Crops draw from torch's global generator: seed it per sample (in a forked state, so the model's
        # dropout RNG is untouched when there are no workers) to make augmentation resume-exact.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(image), caption


def decode_image(data: bytes | None, target_size: int | None, max_pixels: int) -> Image.Image:
    """Decode stored image bytes to RGB; JPEGs are decoded at a reduced scale when far larger than needed."""
    if not data:
        raise SampleError("image_missing", "no image bytes")
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)  # never hands EPS to Ghostscript
        if image.width * image.height > max_pixels:
            raise SampleError("image_too_large", f"{image.width}x{image.height} exceeds {max_pixels} pixels")
        if target_size:
            draft_jpeg(image, (target_size, target_size))  # DCT scaling keeps both sides >= target
        return image.convert("RGB")
    except Image.DecompressionBombError as e:
        raise SampleError("image_too_large", str(e)) from e
    except Image.UnidentifiedImageError as e:
        raise SampleError(
            "image_decode", f"not an image in an allowed format ({', '.join(ALLOWED_FORMATS)})"
        ) from e
    except (OSError, ValueError, SyntaxError) as e:
        raise SampleError("image_decode", str(e)) from e


class DeviceNormalize:
    """The ToTensor-and-Normalize tail of a transform, applied on the training device to uint8 batches."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        # the same float ops as torchvision's ToTensor and Normalize, so values match the CPU path exactly
        images = images.float().div_(255)
        return images.sub_(self.mean.to(images.device)).div_(self.std.to(images.device))


def uint8_transform(transform: Any) -> tuple[Any, DeviceNormalize]:
    """Split open_clip's train transform into a worker part ending in a uint8 tensor and a device part.

    Workers then hand over a quarter of the bytes (no float conversion, 4x less shared and pinned memory
    traffic) and the GPU does the arithmetic.
    """
    from torchvision import transforms as T

    steps = list(transform.transforms)
    normalize = steps[-1]
    if not isinstance(normalize, T.Normalize) or type(steps[-2]).__name__ not in (
        "MaybeToTensor",
        "ToTensor",
    ):
        raise ValueError(f"expected a transform ending in ToTensor and Normalize, got {transform}")
    return T.Compose([*steps[:-2], T.PILToTensor()]), DeviceNormalize(
        tuple(normalize.mean), tuple(normalize.std)
    )


def _windows(pieces: list[Piece], buffer: int) -> Iterator[list[Piece]]:
    window: list[Piece] = []
    size = 0
    for piece in pieces:
        window.append(piece)
        size += len(piece)
        if size >= buffer:
            yield window
            window, size = [], 0
    if window:
        yield window


class _RowGroupReader:
    """Reads the kept rows of row-group pieces, keeping the shards it opened open until closed."""

    def __init__(self, index: CorpusIndex) -> None:
        self.index = index
        self._files: dict[int, tuple[Any, pq.ParquetFile]] = {}

    def read(self, pieces: list[Piece]) -> pa.Table:
        parts = []
        for piece in pieces:
            unit = self.index.units[piece.unit]
            parquet = self._parquet(unit.shard)
            # `captions` is optional: a foreign corpus may have one caption per image only
            columns = [c for c in READ_COLUMNS if c in parquet.schema_arrow.names]
            table = parquet.read_row_group(unit.row_group, columns=columns)
            parts.append(table.take(pa.array(unit.rows[piece.start : piece.stop])))
        return pa.concat_tables(parts, promote_options="default") if len(parts) > 1 else parts[0]

    def _parquet(self, shard: int) -> pq.ParquetFile:
        if shard not in self._files:
            filesystem, path = fs.filesystem(self.index.shards[shard])
            handle = filesystem.open(path, "rb")
            self._files[shard] = (handle, pq.ParquetFile(handle))
        return self._files[shard][1]

    def close(self) -> None:
        for handle, _ in self._files.values():
            handle.close()
        self._files.clear()


def _round_robin(iterators: list[Iterator[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """Interleave like a DataLoader serves its workers: in turn, skipping those that are done."""
    active = list(iterators)
    while active:
        still = []
        for it in active:
            try:
                yield next(it)
            except StopIteration:
                continue
            still.append(it)
        active = still
