"""Reading features and labels that a network wrote anywhere (``python -m ufm.analyze``).

Features: ``.npy`` (one N x d array), ``.npz`` (a key pair of ``FEATURE_KEYS``), a PyTorch
``.pt`` / ``.pth`` file (a tensor or a dict of tensors; read with ``torch.load(...,
weights_only=True)`` when torch is installed: torch is not a dependency), ``.safetensors``
(a strict reader below, no dependency) or text, ``.txt`` / ``.csv`` (one sample a line, its d
numbers separated by white space or commas, ``#`` comments; ``numpy.loadtxt``). Labels: in the same file (the pair's second key) or a
separate ``.npy`` (1-D integers) or ``.txt`` / ``.csv`` (integers separated by white space or
commas) file.

Every unusable file raises ``FeaturesFileError`` with one line naming the problem. Sizes are
checked before reading: the file must be a regular file no larger than ``1/MAX_FILE_FACTOR`` of
the memory budget (``ufm.cli.limits.memory_budget``; ``SCL_GEOMETRY_MEMORY`` overrides), and
where a header gives the array's shape (``.npy``, ``.npz`` members, ``.safetensors``) the memory
the analysis needs is estimated from it before the data is read.

The safetensors format: 8 bytes, the header length ``n`` (unsigned little-endian); ``n`` bytes
of a UTF-8 JSON object mapping each tensor name to ``{"dtype", "shape", "data_offsets": [begin,
end]}`` (offsets relative to the byte buffer after the header; an optional ``"__metadata__"``
object of strings); then the buffer of raw little-endian, C-order data, fully covered by the
tensors without holes or overlaps.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ufm.cli.io import InputFileError, input_size, read_bounded
from ufm.cli.limits import format_bytes, memory_budget, too_big

__all__ = ["FeaturesFileError", "read_features", "read_labels", "read_safetensors",
           "FEATURE_KEYS", "MAX_FILE_FACTOR", "FEATURE_SUFFIXES", "LABEL_SUFFIXES"]

#: Key pairs (features, labels) looked for, in this order, in .npz / .pt dicts / .safetensors
#: (``ufm.solve --save-embeddings`` writes ``z`` / ``labels``).
FEATURE_KEYS = (("features", "labels"), ("h", "y"), ("z", "labels"))
#: A file larger than ``budget / MAX_FILE_FACTOR`` is refused before it is read (the analysis
#: holds the data, a float64 copy and temporaries: about 3 x the float64 size).
MAX_FILE_FACTOR = 4
FEATURE_SUFFIXES = (".npy", ".npz", ".pt", ".pth", ".safetensors", ".txt", ".csv")
LABEL_SUFFIXES = (".npy", ".txt", ".csv")
_ANALYSIS_BYTES_PER_ENTRY = 3 * 8  # float64 copy + row-sized temporaries, per feature entry
_MAX_HEADER = 100 * 2**20  # the safetensors specification's header bound

_SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8",
                       "I32": "<i4", "I16": "<i2", "I8": "i1", "U64": "<u8", "U32": "<u4",
                       "U16": "<u2", "U8": "u1", "BOOL": "?"}


class FeaturesFileError(ValueError):
    """An unusable features or labels file (the message is one line naming the problem)."""


def _budget() -> int:
    try:
        return memory_budget()
    except ValueError as err:  # SCL_GEOMETRY_MEMORY is not a size
        raise FeaturesFileError(str(err)) from None


def _regular_size(path: str | os.PathLike, budget: int) -> int:
    """The size of the regular file ``path`` (``ufm.cli.io.input_size``: checked against
    ``budget / MAX_FILE_FACTOR`` before reading)."""
    try:
        return input_size(path, budget // MAX_FILE_FACTOR, budget)
    except InputFileError as err:
        raise FeaturesFileError(str(err)) from None


def _check_shape(shape: tuple[int, ...], budget: int, what: str) -> None:
    reason = too_big(int(np.prod(shape, dtype=np.float64)) * _ANALYSIS_BYTES_PER_ENTRY,
                     f"analyzing the {' x '.join(map(str, shape))} {what}", budget)
    if reason is not None:
        raise FeaturesFileError(reason)


def _npy_header(fh) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(fh)
    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
            else np.lib.format.read_array_header_2_0)  # 2.0 and 3.0 (utf-8 names) alike
    shape, _, dtype = read(fh)
    return shape, dtype


def _read_npy(path: str | os.PathLike, budget: int, what: str) -> np.ndarray:
    try:
        with open(path, "rb") as fh:
            shape, dtype = _npy_header(fh)
            if dtype.hasobject:
                raise FeaturesFileError("holds a Python object array (pickled): save a numeric array")
            _check_shape(shape, budget, what)
            fh.seek(0)
            return np.lib.format.read_array(fh, allow_pickle=False)
    except FeaturesFileError:
        raise
    except (ValueError, OSError, EOFError) as err:
        raise FeaturesFileError(f"is not a valid .npy file ({_first_line(err)})") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _pick(arrays: dict[str, Any], kind: str) -> tuple[Any, Any]:
    """``(features, labels or None)`` from a name -> array mapping, by ``FEATURE_KEYS``."""
    for fkey, lkey in FEATURE_KEYS:
        if fkey in arrays:
            return arrays[fkey], arrays.get(lkey)
    names = ", ".join(sorted(map(str, arrays))[:10]) or "none"
    pairs = ", ".join(f"{a}/{b}" for a, b in FEATURE_KEYS)
    raise FeaturesFileError(f"holds no features array: expected the keys {pairs} in the {kind}, "
                            f"found {names}")


def _read_npz(path: str | os.PathLike, budget: int) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with zipfile.ZipFile(path) as zf:
            members = {n.removesuffix(".npy"): zf.getinfo(n) for n in zf.namelist()}
            fkey_lkey = next(((f, l) for f, l in FEATURE_KEYS if f in members), None)
            if fkey_lkey is None:
                _pick(members, ".npz")  # raises, naming the keys found
            wanted = [k for k in fkey_lkey if k in members]
            for key in wanted:
                with zf.open(members[key]) as fh:
                    shape, dtype = _npy_header(fh)
                if dtype.hasobject:
                    raise FeaturesFileError(f"array {key!r} is a Python object array (pickled): "
                                            "save numeric arrays")
                _check_shape(shape, budget, f"array {key!r}")
            with np.load(path, allow_pickle=False) as npz:
                return _pick({k: npz[k] for k in wanted}, ".npz")
    except FeaturesFileError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as err:
        raise FeaturesFileError(f"is not a valid .npz file ({_first_line(err)})") from None


def _read_pt(path: str | os.PathLike) -> tuple[Any, Any]:
    try:
        import torch
    except ImportError:
        raise FeaturesFileError("is a PyTorch file, and reading it needs torch, which is not installed "
                                "(pip install torch; or save the arrays with numpy.save or "
                                "safetensors)") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 (torch raises many types for a bad pickle)
        raise FeaturesFileError("is not a tensor or a dict of tensors that torch.load(weights_only=True) "
                                f"reads ({type(err).__name__}: {_first_line(err)})") from None

    def array(t: Any, name: str) -> np.ndarray:
        if not isinstance(t, torch.Tensor):
            raise FeaturesFileError(f"{name} is a {type(t).__name__}, not a tensor")
        t = t.detach().cpu()
        return (t.float() if t.dtype == torch.bfloat16 else t).numpy()

    if isinstance(obj, torch.Tensor):
        return array(obj, "the object"), None
    if isinstance(obj, dict):
        feats, labels = _pick({str(k): v for k, v in obj.items()}, "dict")
        return array(feats, "the features"), None if labels is None else array(labels, "the labels")
    raise FeaturesFileError(f"holds a {type(obj).__name__}, not a tensor or a dict of tensors")


def read_safetensors(path: str | os.PathLike, budget: int | None = None) -> dict[str, np.ndarray]:
    """Every tensor of a ``.safetensors`` file as a NumPy array (strict: module docstring).

    BF16 tensors are widened to float32. ``FeaturesFileError`` (one line) for anything that
    is not exactly the format: a short file, a header length past the end, a header that is
    not a JSON object, an unknown dtype, a shape or offsets that do not match, holes or
    overlaps in the buffer.
    """
    budget = _budget() if budget is None else budget
    size = _regular_size(path, budget)
    if size < 8:
        raise FeaturesFileError(f"is not a safetensors file: {size} bytes, shorter than its 8-byte header length")
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        if n > size - 8 or n > _MAX_HEADER:
            raise FeaturesFileError(f"is not a safetensors file: its header length {n} exceeds the "
                                    f"{size - 8} bytes that follow")
        raw = fh.read(n)
        try:
            header = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise FeaturesFileError(f"is not a safetensors file: its header is not JSON ({_first_line(err)})") from None
        if not isinstance(header, dict):
            raise FeaturesFileError("is not a safetensors file: its header is not a JSON object")
        buffer_size = size - 8 - n
        spans, specs = [], {}
        for name, info in header.items():
            if name == "__metadata__":
                if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                    raise FeaturesFileError('safetensors "__metadata__" must be an object of strings')
                continue
            specs[name] = _tensor_spec(name, info, buffer_size)
            spans.append((*specs[name][2], name))
        end = 0
        for begin, stop, name in sorted(spans):
            if begin != end:
                raise FeaturesFileError(f"safetensors tensor {name!r} starts at byte {begin} of the buffer, "
                                        f"expected {end} (a hole or an overlap)")
            end = stop
        if end != buffer_size:
            raise FeaturesFileError(f"safetensors buffer holds {buffer_size} bytes, the tensors cover {end}")
        for name, (_, shape, _) in specs.items():
            _check_shape(shape, budget, f"tensor {name!r}")
        data = fh.read(buffer_size)
    if len(data) != buffer_size:
        raise FeaturesFileError("changed while it was read")
    out = {}
    for name, (dtype, shape, (begin, stop)) in specs.items():
        arr = np.frombuffer(data, dtype=np.dtype(_SAFETENSORS_DTYPES[dtype]), count=(stop - begin)
                            // np.dtype(_SAFETENSORS_DTYPES[dtype]).itemsize, offset=begin)
        if dtype == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = arr.reshape(shape)
    return out


def _tensor_spec(name: str, info: Any, buffer_size: int) -> tuple[str, tuple[int, ...], tuple[int, int]]:
    where = f"safetensors tensor {name!r}"
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise FeaturesFileError(f"{where} must be an object with exactly dtype, shape, data_offsets")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if dtype not in _SAFETENSORS_DTYPES:
        raise FeaturesFileError(f"{where} has dtype {dtype!r}; known: {', '.join(_SAFETENSORS_DTYPES)}")

    def nonneg_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    if not isinstance(shape, list) or not all(nonneg_int(v) for v in shape):
        raise FeaturesFileError(f"{where} has shape {shape!r}, not a list of integers >= 0")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(nonneg_int(v) for v in offsets)
            or offsets[0] > offsets[1] or offsets[1] > buffer_size):
        raise FeaturesFileError(f"{where} has data_offsets {offsets!r}, not [begin, end] within the "
                                f"{buffer_size}-byte buffer")
    nbytes = int(np.prod(shape, dtype=np.float64)) * np.dtype(_SAFETENSORS_DTYPES[dtype]).itemsize
    if offsets[1] - offsets[0] != nbytes:
        raise FeaturesFileError(f"{where}: shape {shape} of {dtype} needs {nbytes} bytes, its "
                                f"data_offsets span {offsets[1] - offsets[0]}")
    return dtype, tuple(shape), (offsets[0], offsets[1])


def read_features(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """``(features, labels or None)`` from a features file (module docstring for the formats).

    The arrays are returned as read (shape and dtype are ``ufm.analyze``'s to check);
    ``FeaturesFileError`` (one line) for an unusable file.
    """
    budget = _budget()
    size = _regular_size(path, budget)
    suffix = Path(path).suffix.lower()
    if suffix not in FEATURE_SUFFIXES:
        raise FeaturesFileError(f"has the suffix {suffix or '(none)'!r}; features files are "
                                f"{', '.join(FEATURE_SUFFIXES)}")
    if suffix == ".npy":
        return _read_npy(path, budget, "features"), None
    if suffix == ".npz":
        return _read_npz(path, budget)
    if suffix in (".pt", ".pth"):
        return _read_pt(path)
    if suffix in (".txt", ".csv"):
        return _read_text_features(path, size, budget), None
    tensors = read_safetensors(path, budget)
    if len(tensors) == 1 and not any(f in tensors for f, _ in FEATURE_KEYS):
        return next(iter(tensors.values())), None  # one tensor, whatever its name
    return _pick(tensors, ".safetensors file")


def _read_text(path: str | os.PathLike, parse_bytes: int, what: str, size: int, budget: int) -> bytes:
    """The bytes of a text file whose parsing needs about ``parse_bytes`` (checked against the
    memory ``budget`` first); ``FeaturesFileError`` (one line) otherwise."""
    reason = too_big(parse_bytes, f"parsing {format_bytes(size)} of {what} text", budget)
    if reason is not None:
        raise FeaturesFileError(reason)
    try:
        return read_bounded(path, budget // MAX_FILE_FACTOR, budget)
    except InputFileError as err:
        raise FeaturesFileError(str(err)) from None


def _read_text_features(path: str | os.PathLike, size: int, budget: int) -> np.ndarray:
    """An N x d float64 array from text: one sample a line, numbers separated by white space or
    commas, ``#`` comments. A text number takes at least 2 bytes and becomes an 8-byte float
    (plus the analysis' copies), which bounds the memory before parsing."""
    import io

    text = _read_text(path, size * (8 + _ANALYSIS_BYTES_PER_ENTRY) // 2, "feature", size, budget)
    try:
        out = np.loadtxt(io.BytesIO(text.replace(b",", b" ")), dtype=np.float64, comments="#",
                         ndmin=2)
    except ValueError as err:
        raise FeaturesFileError(_first_line(err)) from None
    if out.size == 0:
        raise FeaturesFileError("holds no features")
    return out


_INT = re.compile(rb"[+-]?\d+")


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Integer labels from a ``.npy`` (a 1-D integer array) or a ``.txt`` / ``.csv`` file
    (integers separated by white space or commas, ``#`` comments allowed). ``FeaturesFileError``
    (one line, with the line number of a bad entry) otherwise."""
    budget = _budget()
    size = _regular_size(path, budget)
    suffix = Path(path).suffix.lower()
    if suffix not in LABEL_SUFFIXES:
        raise FeaturesFileError(f"has the suffix {suffix or '(none)'!r}; labels files are "
                                f"{', '.join(LABEL_SUFFIXES)}")
    if suffix == ".npy":
        return _read_npy(path, budget, "labels")
    text = _read_text(path, size * 40, "label", size, budget)
    values: list[int] = []
    for number, line in enumerate(text.splitlines(), 1):
        for token in line.split(b"#", 1)[0].replace(b",", b" ").split():
            if not _INT.fullmatch(token):
                shown = token[:20].decode("utf-8", "replace")
                raise FeaturesFileError(f"line {number}: {shown!r} is not an integer label")
            values.append(int(token))
    if not values:
        raise FeaturesFileError("holds no labels")
    try:
        return np.array(values, dtype=np.int64)
    except OverflowError:
        raise FeaturesFileError("holds a label outside the 64-bit integer range") from None
