"""The model folder as detectors see it: validated safetensors weights, config, file list.

`open_model` checks every header and the shard index up front and never opens pickles.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import TYPE_CHECKING, Any, Iterator

import blake3

from detectors.base import InputError
from detectors.safetensors import (
    MappedFiles,
    TensorInfo,
    read_header,
    strict_json,
    tensor_place,
    to_array,
)

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "INDEX_FILE",
    "CHECKPOINTS_DIR",
    "PICKLE_SUFFIXES",
    "ModelFolder",
    "open_model",
    "read_json",
    "weights_digest",
    "digest_entry",
]

INDEX_FILE = "model.safetensors.index.json"
CONFIG_FILE = "config.json"
# The training trail lives here; its weights are not the model's own.
CHECKPOINTS_DIR = "checkpoints"
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".pkl", ".ckpt"})
# Config and index files are small; a cap keeps a hostile one from filling memory.
JSON_CAP = 100_000_000
_CHUNK = 1 << 20
# The background digest pass hashes, then drops from memory, blocks of this size.
_DIGEST_BLOCK = 8 << 20


def read_json(path: Path) -> Any:
    """Read a strict JSON file (UTF-8, no duplicate keys, no NaN); `InputError` otherwise."""
    try:
        with open(path, "rb") as f:
            data = f.read(JSON_CAP + 1)
    except OSError as exc:
        raise InputError(path, None, f"cannot read: {exc.strerror or exc}") from None
    if len(data) > JSON_CAP:
        raise InputError(path, None, f"file is larger than {JSON_CAP // 1_000_000} MB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(path, f"byte {exc.start}", "not valid utf-8") from None
    try:
        return strict_json(text)
    except json.JSONDecodeError as exc:
        msg = exc.msg[:1].lower() + exc.msg[1:]
        raise InputError(path, f"line {exc.lineno}:{exc.colno}", f"not valid json: {msg}") from None
    except ValueError as exc:
        raise InputError(path, None, str(exc)) from None


class ModelFolder:
    """An opened model folder. Tensor bytes are memory-mapped on demand; close when done."""

    def __init__(
        self,
        root: Path,
        config: dict[str, Any] | None,
        tensors: dict[str, TensorInfo],
        weight_files: tuple[str, ...],
        pickle_files: tuple[str, ...],
    ) -> None:
        self.root = root
        self.name = root.resolve().name
        self.config = config
        self.tensors = tensors
        self.weight_files = weight_files
        self.pickle_files = pickle_files
        # Bytes of tensor data (what `iter_tensors` yields), for progress reports.
        self.total_bytes = sum(info.nbytes for info in tensors.values())
        self._maps = MappedFiles()
        self._tensor_digests: dict[str, str] = {}
        order = {root / rel: i for i, rel in enumerate(weight_files)}
        # Tensors in file, then offset, order: how every pass over the bytes walks them.
        self.file_order = tuple(sorted(tensors.values(), key=lambda t: (order[t.file], t.start, t.name)))
        self._digests: _DigestPass | None = None

    def raw(self, name: str) -> memoryview:
        """The tensor's bytes, zero-copy and read-only."""
        return self._maps.raw(self.tensors[name])

    def array(self, name: str) -> np.ndarray:
        """The tensor as numpy: float32 for BF16 and FP8, native little-endian otherwise."""
        info = self.tensors[name]
        return to_array(info, self._maps.raw(info))

    def iter_tensors(self) -> Iterator[tuple[TensorInfo, memoryview]]:
        """Every tensor with its bytes, in file then offset order, one at a time."""
        for info in self.file_order:
            yield info, self._maps.raw(info)

    def digest_in_background(self) -> None:
        """Start hashing every tensor's bytes, in file order, on a background thread.

        Whatever runs meanwhile (loading detectors, reading the catalogue, sampling the
        weights) overlaps with the one pass that must read every byte; `tensor_digest`
        then waits for the tensor it asks for. Stopped by `close`.
        """
        if self._digests is None and self.file_order:
            self._digests = _DigestPass(self.file_order, self._tensor_digests)

    def tensor_digest(self, name: str) -> str:
        """`blake3:<hex>` of the tensor's raw bytes: from the background pass if one
        runs, otherwise computed here through the memory map."""
        digest = self._tensor_digests.get(name)
        if digest is None and self._digests is not None:
            digest = self._digests.wait(name)
        if digest is None:
            digest = self._tensor_digests[name] = _mapped_digest(self._maps, self.tensors[name])
        return digest

    def files_digest(self) -> str:
        """`blake3:<hex>` over the model's files outside `checkpoints/`, by relative path.

        A safetensors weight file counts by its header and the digest of each tensor's
        bytes (the same digests the weights detector uses, so the weights are hashed
        once); a pickle
        file by its size, since it is never read; any other file by its content's digest.
        Symbolic links contribute their target text, not what they point to.
        """
        weights = {rel: [] for rel in self.weight_files}
        for info in self.file_order:
            weights[info.file.relative_to(self.root).as_posix()].append(info)
        pickles = set(self.pickle_files)
        outer = blake3.blake3()
        for rel, full, is_link in _walk(self.root):
            if rel.startswith(CHECKPOINTS_DIR + "/"):
                continue
            if is_link:
                entry = f"link\0{rel}\0{os.readlink(full)}\n"
            elif rel in weights:
                tensors = "".join(f"{t.name}\0{self.tensor_digest(t.name)}\0" for t in weights[rel])
                entry = f"weights\0{rel}\0{_header_digest(full)}\0{tensors}\n"
            elif rel in pickles:
                entry = f"pickle\0{rel}\0{full.stat().st_size}\n"
            else:
                entry = f"file\0{rel}\0{_file_digest(full)}\n"
            outer.update(entry.encode("utf-8", "surrogateescape"))
        return "blake3:" + outer.hexdigest()

    def close(self) -> None:
        if self._digests is not None:
            self._digests.stop()
        self._maps.close()

    def __enter__(self) -> ModelFolder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        counts = f"tensors={len(self.tensors)}, files={len(self.weight_files)}"
        return f"ModelFolder({self.name!r}, {counts})"


class _DigestPass:
    """`blake3:<hex>` of each tensor's bytes, computed in file order on its own thread.

    It reads through its own memory maps, dropping each block's pages once hashed, so
    it adds little to the process's resident pages however large the model. A reading
    error is raised to whoever waits for a digest the pass could not compute.
    """

    def __init__(self, order: tuple[TensorInfo, ...], done: dict[str, str]) -> None:
        self._order = order
        self._done = done  # the model's tensor → digest, filled in here
        self._error: Exception | None = None
        self._finished = False
        self._stopping = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="tensor-digests", daemon=True)
        self._thread.start()

    def wait(self, name: str) -> str | None:
        """The tensor's digest once computed; None if the pass stopped before it."""
        with self._changed:
            while name not in self._done and self._error is None and not self._finished:
                self._changed.wait()
            if name in self._done:
                return self._done[name]
            if self._error is not None:
                raise self._error
            return None

    def stop(self) -> None:
        self._stopping = True
        self._thread.join()

    def _run(self) -> None:
        maps = MappedFiles()
        try:
            for info in self._order:
                if self._stopping:
                    break
                digest = _mapped_digest(maps, info)
                with self._changed:
                    self._done[info.name] = digest
                    self._changed.notify_all()
        except Exception as exc:  # raised again to the waiter, never lost on this thread
            with self._changed:
                self._error = exc
        finally:
            maps.close()
            with self._changed:
                self._finished = True
                self._changed.notify_all()


def _mapped_digest(maps: MappedFiles, info: TensorInfo) -> str:
    # One thread: during detection the other core samples and matches these weights.
    hasher = blake3.blake3()
    view = maps.raw(info)
    try:
        for start in range(0, info.nbytes, _DIGEST_BLOCK):
            end = min(info.nbytes, start + _DIGEST_BLOCK)
            hasher.update(view[start:end])
            maps.drop(info, start, end)
    finally:
        view.release()
    return "blake3:" + hasher.hexdigest()


def _header_digest(path: Path) -> str:
    """Digest of a safetensors file's length prefix and header (already validated)."""
    with open(path, "rb") as f:
        prefix = f.read(8)
        header = f.read(int.from_bytes(prefix, "little"))
    return blake3.blake3(prefix + header).hexdigest()


def _file_digest(path: Path) -> str:
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK * 16):
            hasher.update(chunk)
    return hasher.hexdigest()


def _walk(root: Path) -> list[tuple[str, Path, bool]]:
    """(relative POSIX path, path, is symlink) for every regular file or link, sorted."""
    found: list[tuple[str, Path, bool]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        names = list(filenames)
        # A symlinked directory is listed but not followed: record it as a link.
        names += [d for d in dirnames if (base / d).is_symlink()]
        for name in names:
            full = base / name
            mode = full.lstat().st_mode
            rel = full.relative_to(root).as_posix()
            if stat.S_ISLNK(mode):
                found.append((rel, full, True))
            elif stat.S_ISREG(mode):
                found.append((rel, full, False))
    found.sort(key=lambda item: item[0].encode("utf-8", "surrogateescape"))
    return found


def _inside(root: Path, rel: str, source: Path, place: str) -> Path:
    """Resolve a relative path from a file the model supplies, refusing escapes."""
    pure = PurePosixPath(rel)
    shown = rel.replace("`", "'")
    drive = len(rel) > 1 and rel[1] == ":"
    if not rel or "\\" in rel or "\0" in rel or pure.is_absolute() or drive:
        raise InputError(source, place, f"shard path `{shown}` is not a relative path")
    if ".." in pure.parts:
        raise InputError(source, place, f"shard path `{shown}` leaves the model folder")
    if pure.parts and pure.parts[0] == CHECKPOINTS_DIR:
        raise InputError(source, place, f"shard path `{shown}` lies in `{CHECKPOINTS_DIR}/`")
    full = root / pure
    if not full.exists() and not full.is_symlink():
        raise InputError(source, place, f"shard `{shown}` does not exist")
    _contained(root, full, source, place)
    if not full.is_file():
        raise InputError(source, place, f"shard `{shown}` is not a regular file")
    return full


def _contained(root: Path, full: Path, source: Path, place: str | None) -> None:
    real_root = root.resolve()
    real = full.resolve()
    if real != real_root and real_root not in real.parents:
        rel = full.relative_to(root).as_posix().replace("`", "'")
        raise InputError(source, place, f"`{rel}` links outside the model folder")


def _from_index(root: Path) -> tuple[list[str], dict[str, str]]:
    """Validate the shard index; return the shard paths and tensor → shard."""
    index_path = root / INDEX_FILE
    _contained(root, index_path, index_path, None)
    index = read_json(index_path)
    if not isinstance(index, dict):
        raise InputError(index_path, None, "index is not a json object")
    if "weight_map" not in index:
        raise InputError(index_path, None, "missing field `weight_map`")
    weight_map = index["weight_map"]
    if not isinstance(weight_map, dict):
        raise InputError(index_path, "field `weight_map`", "weight_map is not a json object")
    if "metadata" in index and not isinstance(index["metadata"], dict):
        raise InputError(index_path, "field `metadata`", "metadata is not a json object")
    shards: dict[str, Path] = {}
    owner: dict[str, str] = {}
    for name, rel in weight_map.items():
        place = f"weight_map {tensor_place(name)}"
        if not name:
            raise InputError(index_path, "field `weight_map`", "tensor name is empty")
        if not isinstance(rel, str):
            raise InputError(index_path, place, "shard path is not a string")
        if rel not in shards:
            shards[rel] = _inside(root, rel, index_path, place)
        owner[name] = PurePosixPath(rel).as_posix()
    return sorted({PurePosixPath(r).as_posix() for r in shards}), owner


def _top_level_weights(root: Path) -> list[str]:
    out = []
    for entry in sorted(os.listdir(root)):
        full = root / entry
        if entry.endswith(".safetensors") and (full.is_file() or full.is_symlink()):
            _contained(root, full, full, None)
            if not full.is_file():
                raise InputError(full, None, "not a regular file")
            out.append(entry)
    return out


def _pickle_files(root: Path) -> tuple[str, ...]:
    # Listed by name only: their content is never read here.
    return tuple(
        rel
        for rel, _full, _link in _walk(root)
        if PurePosixPath(rel).suffix.lower() in PICKLE_SUFFIXES
    )


def open_model(path: str | Path) -> ModelFolder:
    """Open a model folder, validating every safetensors header and the shard index.

    Weights are `model.safetensors.index.json`'s shards if present, else every top-level
    `*.safetensors`; `checkpoints/` never counts. Pickle files are listed, never opened.
    """
    root = Path(path)
    if not root.exists():
        raise InputError(root, None, "model folder does not exist")
    if not root.is_dir():
        raise InputError(root, None, "not a directory")

    owner: dict[str, str] | None = None
    if (root / INDEX_FILE).exists() or (root / INDEX_FILE).is_symlink():
        weight_files, owner = _from_index(root)
    else:
        weight_files = _top_level_weights(root)

    tensors: dict[str, TensorInfo] = {}
    found_in: dict[str, str] = {}
    for rel in weight_files:
        full = root / rel
        shard_tensors, _metadata, _start = read_header(full)
        for name, info in shard_tensors.items():
            if name in found_in:
                raise InputError(full, tensor_place(name), f"tensor is also in `{found_in[name]}`")
            if owner is not None and owner.get(name) != rel:
                if name not in owner:
                    problem = f"tensor is not listed in `{INDEX_FILE}`"
                else:
                    problem = f"`{INDEX_FILE}` places the tensor in `{owner[name]}`"
                raise InputError(full, tensor_place(name), problem)
            found_in[name] = rel
            tensors[name] = info
    if owner is not None:
        for name, rel in sorted(owner.items()):
            if name not in found_in:
                place = f"weight_map {tensor_place(name)}"
                raise InputError(root / INDEX_FILE, place, f"tensor is not in shard `{rel}`")

    config: dict[str, Any] | None = None
    config_path = root / CONFIG_FILE
    if config_path.exists() or config_path.is_symlink():
        _contained(root, config_path, config_path, None)
        loaded = read_json(config_path)
        if not isinstance(loaded, dict):
            raise InputError(config_path, None, "config is not a json object")
        config = loaded

    pickles = _pickle_files(root)
    if not weight_files and not pickles:
        # Nothing to judge: an empty list of components would pass every "no component
        # may ..." criterion, so a folder without weights is refused outright.
        raise InputError(root, None, "no model weights here: expected `model.safetensors` or shards "
                         f"listed in `{INDEX_FILE}`")
    return ModelFolder(
        root=root,
        config=config,
        tensors=dict(sorted(tensors.items())),
        weight_files=tuple(weight_files),
        pickle_files=pickles,
    )


def weights_digest(model: ModelFolder) -> str:
    """`blake3:<hex>` over the tensors sorted by name: each as its `digest_entry`
    followed by its raw bytes. Independent of file layout, so a team can commit to its
    step-0 weights before training ends."""
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    for name in sorted(model.tensors):
        hasher.update(digest_entry(model.tensors[name]))
        hasher.update(model.raw(name))
    return "blake3:" + hasher.hexdigest()


def digest_entry(info: TensorInfo) -> bytes:
    """What `weights_digest` hashes before a tensor's bytes: a length-prefixed JSON
    `[name, dtype, shape, nbytes]`."""
    encoded = json.dumps([info.name, info.dtype, list(info.shape), info.nbytes], ensure_ascii=False).encode("utf-8")
    return len(encoded).to_bytes(8, "little") + encoded
