"""Pretrained weights: declarations, the download cache, hash checks and loading into a model.

A :class:`~facescope.models.spec.WeightSpec` is data declared in the family's catalogue entry. Files are cached in
``$FACESCOPE_HOME/weights`` (default ``~/.cache/facescope/weights``), downloaded on first use and
refused when their sha256 differs from the declared one. Offline, the error says which file to
place where.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from facescope.errors import WeightsError
from facescope.fileio import atomic_path
from facescope.models.spec import EMBEDDED_DIR, WeightSpec

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

#: ``{key: shape}`` of a state dict -> the registered architectures it fits (the registry's
#: ``find_architectures_for``, passed in by the registry so that this module does not depend on it).
ArchitectureFinder = Callable[[dict[str, tuple[int, ...]]], list[str]]


__all__ = ["WeightSpec", "fetch_weights", "file_sha256", "read_state_dict", "verify_sha256"]


def facescope_home() -> Path:
    """``$FACESCOPE_HOME`` or ``~/.cache/facescope``."""
    return Path(os.environ.get("FACESCOPE_HOME", Path.home() / ".cache" / "facescope")).expanduser()


def weights_dir() -> Path:
    return facescope_home() / "weights"


def cached_path(spec: WeightSpec) -> Path:
    """Where a release's file lives: inside the package when embedded, else in the cache (it may not exist yet)."""
    return EMBEDDED_DIR / spec.filename if spec.embedded else weights_dir() / spec.filename


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks; remembered per (path, size, modification time), so the
    several checks of one weights file while a detector loads (release, licence, graph cache) hash it once."""
    stat = Path(path).stat()
    return _file_sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _file_sha256(path: str, _size: int, _mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected: str) -> None:
    """Raise :class:`WeightsError` unless ``path`` hashes to ``expected``."""
    actual = file_sha256(path)
    if actual != expected.lower():
        raise WeightsError(
            f"refusing weights {path}: sha256 is {actual}, expected {expected}; the file is corrupt, "
            f"truncated or a different release - delete it and try again"
        )


def verify_release_file(path: str | Path, spec: WeightSpec) -> None:
    """Raise :class:`WeightsError` unless ``path`` has ``spec``'s size (when declared) and sha256."""
    if spec.size_bytes is not None:
        size = Path(path).stat().st_size
        if size != spec.size_bytes:
            raise WeightsError(
                f"refusing weights {path}: {size:,} bytes, expected {spec.size_bytes:,} for '{spec.filename}'; "
                f"the file is truncated or a different release - delete it and try again"
            )
    verify_sha256(path, spec.sha256)


def fetch_weights(spec: WeightSpec, progress: bool = True) -> Path:
    """Return the local path of ``spec``'s file, downloading and verifying it if needed."""
    target = cached_path(spec)
    if target.exists():
        verify_release_file(target, spec)
        return target
    if spec.embedded:
        raise WeightsError(f"the embedded weights file {target} is missing: the facescope installation is incomplete; reinstall it")
    import urllib.error  # here, not at module level: http/email modules cost ~0.1 s of cold start
    import zipfile

    urls = list(spec.mirrors) + [spec.url]
    failures = []
    for url in urls:
        try:
            _download_to(url, spec, target, progress)
            return target
        except (urllib.error.URLError, OSError, zipfile.BadZipFile, KeyError) as exc:
            failures.append(f"{url}: {exc}")
        except WeightsError as exc:
            failures.append(str(exc))
    raise WeightsError(
        f"cannot download weights '{spec.filename}' ({'; '.join(failures)}). Offline? Place the file "
        f"(sha256 {spec.sha256}{', from ' + spec.archive_member + ' inside ' + spec.url if spec.archive_member else ', from ' + spec.url}) "
        f"at {target}, or pass --weights PATH / weights=PATH; set FACESCOPE_HOME to move the cache"
    )


def _download_to(url: str, spec: WeightSpec, target: Path, progress: bool) -> None:
    import io
    import zipfile

    payload = _read_url(url, progress)
    if url == spec.url and spec.archive_member is not None:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            payload = archive.read(spec.archive_member)
    with atomic_path(target, ".part") as tmp:  # a hash mismatch raises: nothing reaches the cache
        tmp.write_bytes(payload)
        verify_release_file(tmp, spec)


def _read_url(url: str, progress: bool) -> bytes:
    import io
    import urllib.request

    from tqdm import tqdm

    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - URLs come from WeightSpecs
        total = int(response.headers.get("Content-Length") or 0) or None
        buffer = io.BytesIO()
        with tqdm(total=total, unit="B", unit_scale=True, desc=Path(url).name, disable=not progress) as bar:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                buffer.write(chunk)
                bar.update(len(chunk))
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# Loading files into a model
# ---------------------------------------------------------------------------------------------

# Buffers that some releases omit; missing ones keep their constructor values.
_OPTIONAL_KEY_SUFFIXES = ("num_batches_tracked", "integral.project")


# First bytes of the files facescope reads: torch.save writes a zip archive (or, before PyTorch 1.6, a pickle).
_TORCH_MAGICS = (b"PK\x03\x04", b"\x80")
_OTHER_FORMATS = {b"TFL3": "a TensorFlow Lite model", b"\x89HDF": "a Keras/HDF5 file", b"GGUF": "a GGUF file"}


def check_weights_file(path: Path) -> None:
    """Refuse, in one line and before any library is imported, a weights path that is neither an
    ``.onnx`` file nor a PyTorch checkpoint (``torch.save`` zip or pickle): a ``.tflite`` would
    otherwise reach ``torch.load`` and come back with PyTorch's unrelated advice."""
    if path.suffix.lower() == ".onnx" or path.is_dir():
        return
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(_TORCH_MAGICS):
        return
    kind = next((name for magic, name in _OTHER_FORMATS.items() if magic in head), "not a format facescope reads")
    raise WeightsError(
        f"weights {path}: {kind}; facescope reads .onnx files and PyTorch checkpoints (.pth, written by torch.save)"
    )


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a PyTorch weights file in any of the layouts in circulation.

    Accepts a bare state dict, an mmdet checkpoint (``{"state_dict", "meta", ...}``), a facescope
    checkpoint (``{"model", ...}``) and DataParallel files (``module.`` prefix).
    """
    return read_torch_weights(path)[0]


def read_torch_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """``(state dict, saved model options)`` of a PyTorch weights file (:func:`read_state_dict`'s layouts);
    the options are those a facescope checkpoint records (``"model_args"``), None for other files."""
    import torch

    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        if "weights_only" in str(exc):  # torch's advice to unpickle arbitrary code is not ours to give
            raise WeightsError(f"cannot read weights {path}: it holds Python objects besides tensors, and facescope loads tensors only") from None
        raise WeightsError(f"cannot read weights {path}: not a PyTorch checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    model_args = obj.get("model_args") if isinstance(obj, dict) and isinstance(obj.get("model_args"), dict) else None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"cannot read weights {path}: no state dict of tensors inside")
    return {_strip_prefix(k): v for k, v in obj.items()}, model_args


def read_onnx_model_args(path: str | Path) -> dict[str, Any] | None:
    """The saved model options of an ONNX file (``facescope_model_args`` metadata), None when absent."""
    import onnx

    from facescope.models.options import saved_from_json

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises assorted errors on corrupt files
        raise WeightsError(f"cannot read ONNX weights {path}: {type(exc).__name__}: {exc}")
    metadata = {p.key: p.value for p in proto.metadata_props}
    return saved_from_json(metadata.get("facescope_model_args"), str(path))


def _strip_prefix(key: str) -> str:
    return key[len("module.") :] if key.startswith("module.") else key


def load_state_dict_checked(
    model: nn.Module, state: dict[str, torch.Tensor], source: str, arch: str, fits: ArchitectureFinder | None = None
) -> None:
    """Strict load with a one-line explanation when the weights do not fit the architecture."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(_OPTIONAL_KEY_SUFFIXES)]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [k for k in state if k in expected and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong_shape:
        hint = _guess_architecture(state, fits)
        raise WeightsError(_mismatch_message(source, arch, missing, unexpected, wrong_shape, state, expected) + hint)
    model.load_state_dict(state, strict=False)


def _mismatch_message(
    source: str,
    arch: str,
    missing: list[str],
    unexpected: list[str],
    wrong_shape: list[str],
    state: dict[str, torch.Tensor],
    expected: dict[str, torch.Tensor],
) -> str:
    parts = []
    if wrong_shape:
        k = wrong_shape[0]
        parts.append(f"{len(wrong_shape)} tensors of the wrong shape (e.g. {k}: file {list(state[k].shape)}, model {list(expected[k].shape)})")
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    return f"weights {source} do not fit architecture '{arch}': " + ", ".join(parts)


def _guess_architecture(state: dict[str, torch.Tensor], fits: ArchitectureFinder | None) -> str:
    names = fits({k: tuple(v.shape) for k, v in state.items()}) if fits is not None else []
    return f"; they fit {', '.join(repr(n) for n in names)}" if names else ""


@dataclass
class WeightsFile:
    """A weights file read for loading: its saved model options come before the model is built.

    Attributes:
        path: the file.
        model_args: the options the file records (saved form), None when it records none.
        state: the state dict of a PyTorch file (None for ``.onnx``, imported node by node).
    """

    path: Path
    model_args: dict[str, Any] | None
    state: dict[str, torch.Tensor] | None

    @classmethod
    def read(cls, path: str | Path, sha256: str | None = None) -> WeightsFile:
        """Read ``path`` (``.onnx`` or a PyTorch file), checking ``sha256`` if given."""
        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"weights file not found: {path}")
        if sha256 is not None:
            verify_sha256(path, sha256)
        if path.suffix.lower() == ".onnx":
            return cls(path, read_onnx_model_args(path), None)
        state, model_args = read_torch_weights(path)
        return cls(path, model_args, state)

    def load_into(self, model: nn.Module, arch: str, fits: ArchitectureFinder | None = None) -> None:
        """Copy the weights into ``model`` (in place), refusing a file that does not fit it (naming the
        architectures it fits, ``fits``, when it can)."""
        if self.state is None:
            from facescope.models.onnx_import import import_onnx_weights

            import_onnx_weights(model, self.path, arch)
            model.weights_loaded = True  # copied tensor by tensor, not through load_state_dict
        else:
            load_state_dict_checked(model, self.state, str(self.path), arch, fits)


def save_state_dict(model: nn.Module, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Atomically write ``{"model": state_dict, "model_args": the model's options, **extra}`` to ``path``."""
    import torch

    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"model": model.state_dict(), "model_args": dict(getattr(model, "model_args", {})), **(extra or {})}, tmp)
    return path


def copy_into_cache(path: str | Path, spec: WeightSpec) -> Path:
    """Verify ``path`` against ``spec`` and copy it into the cache (for offline installs)."""
    import shutil

    verify_sha256(path, spec.sha256)
    target = cached_path(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    return target
