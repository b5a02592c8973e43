"""`local_copy`: a remote folder or file copied once to the machine's cache and reused.

fsspec's in-process "memory://" filesystem stands in for gs:// and s3:// (no network here); it reports
`created` and `size` for each file, as gcsfs and s3fs report generation / etag and size.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import fsspec
import pytest

from connectors.local_copy import is_remote, local_copy


@pytest.fixture
def remote() -> str:
    """A fresh folder on the memory filesystem, removed afterwards."""
    url = f"memory://medcorpus-test-{uuid.uuid4().hex}"
    memory = fsspec.filesystem("memory")
    memory.pipe({f"{url}/a.txt": b"alpha", f"{url}/sub/b.bin": b"\x00\x01\x02"})
    yield url
    memory.rm(url, recursive=True)


def test_a_plain_path_is_used_where_it_is(tmp_path):
    assert not is_remote(tmp_path) and is_remote("gs://bucket/kb") and is_remote("file:///data/kb")
    assert local_copy(tmp_path, cache_root=tmp_path / "cache") == tmp_path
    assert not (tmp_path / "cache").exists()


def test_a_remote_folder_is_copied_once_and_reused(remote, tmp_path):
    cache = tmp_path / "cache"
    first = local_copy(remote, cache_root=cache)
    assert (first / "a.txt").read_bytes() == b"alpha"
    assert (first / "sub" / "b.bin").read_bytes() == b"\x00\x01\x02"
    inode = (first / "a.txt").stat().st_ino

    second = local_copy(remote + "/", cache_root=cache)
    assert second == first
    assert (second / "a.txt").stat().st_ino == inode  # the same file: not copied again
    assert [p.name for p in cache.iterdir()] == [first.name]  # no temporary folder left behind


def test_a_changed_remote_folder_is_copied_afresh(remote, tmp_path):
    cache = tmp_path / "cache"
    old = local_copy(remote, cache_root=cache)
    fsspec.filesystem("memory").pipe(f"{remote}/a.txt", b"alpha, second edition")
    new = local_copy(remote, cache_root=cache)
    assert new != old
    assert (new / "a.txt").read_bytes() == b"alpha, second edition"
    assert (old / "a.txt").read_bytes() == b"alpha"  # a worker still reading the old copy keeps it


def test_a_remote_file_gives_the_local_file(remote, tmp_path):
    path = local_copy(f"{remote}/sub/b.bin", cache_root=tmp_path / "cache")
    assert isinstance(path, Path) and path.name == "b.bin"
    assert path.read_bytes() == b"\x00\x01\x02"


def test_a_missing_remote_path_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        local_copy(f"memory://medcorpus-missing-{uuid.uuid4().hex}", cache_root=tmp_path)


def test_file_urls_are_copied_too(tmp_path):
    """A `file://` URL names a mount some machines may lack, so it is copied like gs:// would be."""
    source = tmp_path / "kb"
    source.mkdir()
    (source / "x.json").write_text("{}")
    copy = local_copy(f"file://{source}", cache_root=tmp_path / "cache")
    assert copy != source and (copy / "x.json").read_text() == "{}"


def test_processes_racing_on_one_machine_end_with_one_copy(tmp_path):
    """SDK worker processes of one machine copy at once: each gets a complete copy, one folder stays."""
    source = tmp_path / "kb"
    (source / "linker").mkdir(parents=True)
    for i in range(20):
        (source / "linker" / f"part-{i}.bin").write_bytes(bytes([i]) * 100_000)
    script = (
        "import sys; from connectors.local_copy import local_copy; "
        "print(local_copy(sys.argv[1], cache_root=sys.argv[2]))"
    )
    args = [sys.executable, "-c", script, f"file://{source}", str(tmp_path / "cache")]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [p.communicate()[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert len(set(outputs)) == 1
    copy = Path(outputs[0])
    assert sorted(p.name for p in (copy / "linker").iterdir()) == sorted(
        p.name for p in (source / "linker").iterdir()
    )
    assert all((copy / "linker" / f"part-{i}.bin").read_bytes() == bytes([i]) * 100_000 for i in range(20))
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [copy.name]
