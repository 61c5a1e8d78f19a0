"""One editing session, without Qt: what a user would lose if the app closed, and its `.lsteer` file.

A session is the face being edited and everything around it: the undo/redo `History` of
`EditState`s (each state carries the face's base — a seed, a canvas point or a photo's z — its
slider strengths, its locks, the exact z once rendered, and a photo's own tuned generator
`core.tuning.GeneratorDelta`, with the photo itself for paste-back), the snapshot strip, the
keyframe pins and the "before" face. The window and the CLI both read and write it; the window
autosaves it.

The file is a zip of `session.json` (the structure) and `tensors.pt` (a flat name → tensor dict
written by `torch.save`, read back only with `torch.load(weights_only=True)`). Objects shared
between states (a base code, a canvas plane, a photo's generator delta, a tensor) are written
once and come back shared, so a restored history compares, renders and undoes exactly as before.
Every read is validated — sizes before decompressing, the format and version, every type, range
and tensor — and anything wrong is one `SessionError` sentence; writing goes through the atomic
writer of `core.atomic`, so a failed or interrupted save leaves the previous file whole.
"""
from __future__ import annotations

import io
import json
import math
import os
import warnings
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from core.align import PhotoPlacement
from core.atomic import atomic_write
from core.canvas import LatentPlane
from core.history import EditState, History, Keyframes, PlanePoint, SeedPoint, Snapshots
from core.messages import one_line
from core.seed import MAX_SEED
from core.tuning import GeneratorDelta

Tensor = torch.Tensor

FORMAT = "latent-steer-session"
VERSION = 1  # bump when a reader of this version would misread the file
SUFFIX = ".lsteer"

# Bounds on what a file may make us read or build (a hostile file is refused before it costs much).
MAX_JSON_BYTES = 16 * 2**20
MAX_TENSOR_BYTES = 1 * 2**30  # 48 snapshots of photos, each with its own 1.8 MB generator, fit easily
MAX_MEMBERS = 16
MAX_RATIO = 200  # uncompressed / compressed size of a member: more is a zip bomb
MAX_STATES = 20_000
MAX_Z_DIM = 4096
MAX_IMAGE_SIDE = 1024
MAX_NAME = 200
MAX_ELEMENTS = MAX_TENSOR_BYTES  # no tensor of a session holds more numbers than the whole file may hold bytes
MAX_CODE_ABS = 1e3  # a face code's entries are N(0, 1)-sized (w codes a few units): larger is no face
_IMAGE_DTYPES = (torch.uint8,)
_DELTA_DTYPES = (torch.float16, torch.float32)


class SessionError(ValueError):
    """A session file that cannot be read; the message is one sentence for the user."""


@dataclass
class ModelsInfo:
    """Which models a session was made with: its codes only mean the same face on the same generator."""

    z_dim: int | None = None
    attributes: list[str] | None = None
    generator_hash: str | None = None


@dataclass
class Session:
    """Everything of one editing session; `current` is the face being edited."""

    history: History = field(default_factory=History)
    snapshots: Snapshots = field(default_factory=Snapshots)
    keyframes: Keyframes = field(default_factory=Keyframes)
    start: EditState | None = None  # the "before" face: where editing this face began
    models: ModelsInfo = field(default_factory=ModelsInfo)

    @property
    def current(self) -> EditState | None:
        return self.history.current

    def check_models(self, z_dim: int, attributes: Iterable[str]) -> None:
        """SessionError unless every code has `z_dim` numbers and every edit names a known attribute.

        Names that differ from the models' only in case (written by an older command line, which
        recorded `--set smiling=1` as typed) are put right in place, so such a file opens again."""
        canonical = {a.lower(): a for a in attributes}
        known = set(canonical.values())
        for state in self.all_states():
            fixed = {canonical.get(k.lower(), k): v for k, v in state.alphas.items()}
            if len(fixed) == len(state.alphas):
                state.alphas = fixed
            state.locked = frozenset(canonical.get(k.lower(), k) for k in state.locked)
        from core.latent import max_alpha

        limit = max_alpha(z_dim)
        for state in self.all_states():
            strong = [k for k, v in state.alphas.items() if abs(v) > limit]
            if strong:
                raise SessionError(f"this session's slider for {strong[0]} is at {state.alphas[strong[0]]:g}, beyond "
                                   f"the ±{limit:.1f} this generator supports")
            for t in (state.z, state.base if isinstance(state.base, Tensor) else None):
                if t is not None and t.numel() != z_dim:
                    raise SessionError(f"this session's faces have {t.numel()}-number codes, the current generator "
                                       f"uses {z_dim}; open it with the models it was made with")
            if isinstance(state.base, PlanePoint) and state.base.plane.dim != z_dim:
                raise SessionError(f"this session's canvas plane has {state.base.plane.dim} dimensions, the current "
                                   f"generator uses {z_dim}")
            unknown = sorted((set(state.alphas) | set(state.locked)) - known)
            if unknown:
                raise SessionError(f"this session edits {unknown[0]!r}, which the current models do not know")

    def all_states(self) -> list[EditState]:
        """Every state the session refers to (history, start, snapshots, pins), each once."""
        seen: dict[int, EditState] = {}
        for state in [*self.history.states, self.start, *(s.state for s in self.snapshots),
                      *(k.state for k in self.keyframes)]:
            if state is not None:
                seen.setdefault(id(state), state)
        return list(seen.values())


def base_z(engine: Any, state: EditState) -> Tensor:
    """The state's base code as a (d,) tensor (`engine`: anything with `z_from_seed`)."""
    base = state.base
    if isinstance(base, SeedPoint):
        return engine.z_from_seed(base.seed)[0]
    if isinstance(base, PlanePoint):
        return base.z()
    return base.reshape(-1)


def face_z(engine: Any, state: EditState) -> Tensor:
    """The code of the face a state describes (its recorded z when known)."""
    if state.z is not None:
        return state.z
    base = base_z(engine, state)
    return engine.edit_z(base, state.edits, state.locked_list, state.generator) if state.edits else base



def models_info(engine: Any) -> ModelsInfo:
    return ModelsInfo(z_dim=engine.z_dim, attributes=list(engine.attributes),
                      generator_hash=getattr(engine, "generator_hash", None))


class SessionFile:
    """A command's `--session FILE`: the face it starts from (the file's current face, when the file
    exists and no seed is asked for) and the file its results are recorded in, as new history entries."""

    def __init__(self, path: str | os.PathLike | None, engine: Any) -> None:
        self.path = Path(path) if path else None
        self.engine = engine
        self.session: Session | None = None
        self._lock: IO[bytes] | None = None
        self._read_as: tuple | None = None  # the file's identity when it was read
        if self.path is not None and self.path.exists():
            self._lock = _lock_exclusive(self.path)
            self._read_as = _signature(self.path)
            self.session = load_session(self.path, check=models_info(engine))

    @property
    def current(self) -> EditState | None:
        return self.session.current if self.session is not None else None

    def origin(self, seed: int | None) -> EditState:
        """The face to start from: the session's current face, or the random face of `seed` (default 0)."""
        if self.session is not None and seed is None:
            return self.session.current
        return EditState.seed_face(0 if seed is None else seed)

    def record(self, origin: EditState, *results: EditState) -> Path | None:
        """Add `results` after `origin` (a new face when the session does not hold it yet) and save."""
        if self.path is None:
            return None
        now = _signature(self.path) if self.path.exists() else None
        if now != self._read_as:
            raise SessionError(f"{self.path.name} was changed by another program while this command ran; nothing "
                               "was recorded in it (run the command again)")
        if self.session is None:
            self.session = Session(models=models_info(self.engine))
        history = self.session.history
        if origin is not history.current:
            history.push(origin)
            self.session.start = origin
        for state in results:
            history.seal()
            history.push(state)
        saved = save_session(self.session, self.path)
        self._read_as = _signature(self.path)
        return saved


def _signature(path: Path) -> tuple:
    """What changes when a file is replaced or rewritten (atomic saves make a new inode)."""
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


def _lock_exclusive(path: Path) -> IO[bytes] | None:
    """Hold an exclusive lock on the session file for the command's lifetime (where the platform has
    one): a second command on the same file is refused at once instead of silently losing an edit."""
    try:
        import fcntl
    except ImportError:  # Windows: the signature check in `record` still refuses a lost update
        return None
    try:
        fh = open(path, "rb")
    except OSError:
        return None  # unreadable: load_session says why
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise SessionError(f"{path.name} is being edited by another command right now; try again when it is done"
                           ) from None
    except OSError:
        pass  # a file system without locks: the signature check remains
    return fh


# ---------------------------------------------------------------------------------------------
# Writing


@dataclass
class Encoded:
    """A session turned into JSON + tensors: cheap to make (no copies), and written later.

    Made on the thread that owns the session (the GUI thread) so a writer thread never sees the
    lists change under it; the tensors themselves are never changed in place (core.history).
    """

    meta: dict
    tensors: dict[str, Tensor]


class _Encoder:
    def __init__(self) -> None:
        self.tensors: dict[str, Tensor] = {}
        self._tensor_keys: dict[int, str] = {}
        self.bases: list[dict] = []
        self._base_ids: dict[int, int] = {}
        self.planes: list[dict] = []
        self._plane_ids: dict[int, int] = {}
        self.deltas: list[dict] = []
        self._delta_ids: dict[int, int] = {}
        self.states: list[dict] = []
        self._state_ids: dict[int, int] = {}

    def tensor(self, t: Tensor | None) -> str | None:
        if t is None:
            return None
        key = self._tensor_keys.get(id(t))
        if key is None:
            key = self._tensor_keys[id(t)] = f"t{len(self.tensors)}"
            self.tensors[key] = t.detach().cpu()
        return key

    def plane(self, plane: LatentPlane) -> int:
        if id(plane) not in self._plane_ids:
            self._plane_ids[id(plane)] = len(self.planes)
            self.planes.append({"origin": self.tensor(plane.origin), "a": self.tensor(plane.a),
                                "b": self.tensor(plane.b), "labels": [str(x) for x in plane.labels]})
        return self._plane_ids[id(plane)]

    def base(self, base: Any) -> int:
        if id(base) not in self._base_ids:
            if isinstance(base, SeedPoint):
                entry = {"kind": "seed", "seed": int(base.seed)}
            elif isinstance(base, PlanePoint):
                entry = {"kind": "plane", "plane": self.plane(base.plane), "u": float(base.u), "v": float(base.v)}
            else:
                entry = {"kind": "z", "z": self.tensor(base)}
            self._base_ids[id(base)] = len(self.bases)
            self.bases.append(entry)
        return self._base_ids[id(base)]

    def delta(self, delta: GeneratorDelta | None) -> int | None:
        if delta is None:
            return None
        if id(delta) not in self._delta_ids:
            self._delta_ids[id(delta)] = len(self.deltas)
            entry = {"base_hash": delta.base_hash, "key": delta.key,
                     "tensors": {name: self.tensor(t) for name, t in delta.tensors.items()}}
            placement = delta.photo
            if placement is not None:  # the photo (HWC uint8 -> CHW) and where the face sits in it
                entry["photo"] = {"image": self.tensor(torch.from_numpy(placement.photo).permute(2, 0, 1).contiguous()),
                                  "transform": [float(x) for x in np.asarray(placement.transform).ravel()]}
            self.deltas.append(entry)
        return self._delta_ids[id(delta)]

    def state(self, state: EditState | None) -> int | None:
        if state is None:
            return None
        if id(state) not in self._state_ids:
            self._state_ids[id(state)] = len(self.states)
            self.states.append({"base": self.base(state.base), "alphas": dict(state.alphas),
                                "locked": sorted(state.locked), "label": state.label, "seed": state.seed,
                                "z": self.tensor(state.z), "generator": self.delta(_generator_of(state))})
        return self._state_ids[id(state)]


def _generator_of(state: EditState) -> GeneratorDelta | None:
    return getattr(state, "generator", None)


def encode(session: Session, **extra: Any) -> Encoded:
    """The session as JSON-ready metadata + a flat tensor dict (`extra` goes into the metadata)."""
    enc = _Encoder()
    history = {"states": [enc.state(s) for s in session.history.states], "index": session.history.index,
               "limit": session.history.limit}
    start = enc.state(session.start)
    snapshots = [{"state": enc.state(s.state), "image": enc.tensor(_image(s.image)), "label": s.label}
                 for s in session.snapshots]
    keyframes = [{"state": enc.state(k.state), "uv": None if k.uv is None else [float(k.uv[0]), float(k.uv[1])],
                  "image": enc.tensor(_image(k.image))} for k in session.keyframes]
    m = session.models
    meta = {"format": FORMAT, "version": VERSION,
            "models": {"z_dim": m.z_dim, "attributes": m.attributes, "generator_hash": m.generator_hash},
            "planes": enc.planes, "deltas": enc.deltas, "bases": enc.bases, "states": enc.states,
            "history": history, "start": start, "snapshots": snapshots,
            "snapshot_limit": session.snapshots.limit, "keyframes": keyframes,
            "keyframe_limit": session.keyframes.limit, **extra}
    return Encoded(meta=meta, tensors=enc.tensors)


def _image(image: Any) -> Tensor | None:
    return image if isinstance(image, Tensor) else None


def write_encoded(encoded: Encoded, path: str | os.PathLike) -> Path:
    """Write an encoded session atomically (the previous file stays whole if this fails)."""
    text = json.dumps(encoded.meta, allow_nan=False, ensure_ascii=False).encode()
    buffer = io.BytesIO()
    torch.save(encoded.tensors, buffer)

    def write(fh: IO[bytes]) -> None:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            zf.writestr("session.json", text)
            zf.writestr(zipfile.ZipInfo("tensors.pt"), buffer.getvalue(), compress_type=zipfile.ZIP_STORED)

    return atomic_write(path, write)


def save_session(session: Session, path: str | os.PathLike, **extra: Any) -> Path:
    return write_encoded(encode(session, **extra), path)


# ---------------------------------------------------------------------------------------------
# Reading


def read_meta(path: str | os.PathLike) -> dict:
    """Only the checked JSON part of a session file (e.g. its `clean` flag), no tensors."""
    return _open(Path(path))[0]


def load_session(path: str | os.PathLike, check: ModelsInfo | None = None) -> Session:
    """Read and validate a `.lsteer` file; `check` (z_dim, attributes) also checks it fits those models."""
    path = Path(path)
    meta, tensors = _open(path, with_tensors=True)
    try:
        session = _Decoder(meta, tensors).session()
        if check is not None and check.z_dim is not None:
            session.check_models(check.z_dim, check.attributes or [])
    except SessionError as exc:
        raise SessionError(f"{path.name} cannot be opened: {exc}") from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        raise SessionError(f"{path.name} cannot be opened: it is damaged ({one_line(exc)})") from None
    return session




def _open(path: Path, with_tensors: bool = False) -> tuple[dict, dict[str, Tensor]]:
    """(metadata, tensors) of a session file, every size checked before it is read."""
    name = path.name or str(path)
    try:
        if not path.is_file():
            raise SessionError(f"{name} is not a file" if path.exists() else f"{name} does not exist")
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise SessionError(f"{name} is not a Latent Steer session (it holds {len(infos)} files)")
            members = {i.filename: i for i in infos}
            if "session.json" not in members:
                raise SessionError(f"{name} is not a Latent Steer session (no session.json inside)")
            meta = _parse_meta(_read_member(zf, members["session.json"], MAX_JSON_BYTES, name), name)
            tensors: dict[str, Tensor] = {}
            if with_tensors and "tensors.pt" in members:
                tensors = _parse_tensors(_read_member(zf, members["tensors.pt"], MAX_TENSOR_BYTES, name), name)
    except zipfile.BadZipFile:
        raise SessionError(f"{name} is not a Latent Steer session (not a zip file, or a damaged one)") from None
    except (zipfile.LargeZipFile, NotImplementedError, EOFError, RuntimeError) as exc:
        raise SessionError(f"{name} cannot be read: it is damaged ({one_line(exc)})") from None
    except OSError as exc:
        raise SessionError(f"{name} cannot be read: {exc.strerror or exc}") from None
    return meta, tensors


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, name: str) -> bytes:
    if info.file_size > limit:
        raise SessionError(f"{name} is too large to be a session ({info.filename}: {info.file_size:,} bytes)")
    if info.compress_size and info.file_size / info.compress_size > MAX_RATIO:
        raise SessionError(f"{name} is not a Latent Steer session ({info.filename} inflates "
                           f"{info.file_size // info.compress_size}×)")
    with zf.open(info) as fh:
        data = fh.read(limit + 1)  # the header's size may lie: never read past the limit
    if len(data) > limit:
        raise SessionError(f"{name} is too large to be a session ({info.filename})")
    return data


def _parse_meta(data: bytes, name: str) -> dict:
    try:
        meta = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError):
        raise SessionError(f"{name} is damaged: its session.json is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise SessionError(f"{name} is not a Latent Steer session")
    version = meta.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise SessionError(f"{name} is damaged: its format version is {version!r}")
    if version > VERSION:
        raise SessionError(f"{name} was saved by a newer Latent Steer (session format {version}; this version "
                           f"reads up to {VERSION}); update the app to open it")
    return meta


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not allowed")


def _parse_tensors(data: bytes, name: str) -> dict[str, Tensor]:
    _check_tensor_archive(data, name)
    try:
        with warnings.catch_warnings():  # a foreign pickle protocol warns before it is refused or read
            warnings.simplefilter("ignore")
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - weights_only refuses anything but tensors and plain containers
        raise SessionError(f"{name} is damaged: its tensors cannot be read safely") from None
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        raise SessionError(f"{name} is damaged: its tensors are not a name → tensor table")
    for key, t in obj.items():  # before any value is looked at: a view can claim far more than its storage
        if t.numel() > MAX_ELEMENTS or t.is_sparse or not _dense(t):
            raise SessionError(f"{name} is damaged: its tensor {key[:40]!r} is not stored densely "
                               f"({t.numel():,} values in {t.untyped_storage().nbytes():,} bytes)")
    return obj


def _dense(t: Tensor) -> bool:
    """Each value has its own bytes in the storage (no stride-0 or overlapping view claims more
    values than were stored), and the view stays inside the storage."""
    if t.numel() == 0:
        return True
    extent = t.storage_offset() + 1 + sum((n - 1) * st for n, st in zip(t.shape, t.stride()))
    stored = t.untyped_storage().nbytes() // t.element_size()
    return min(t.stride(), default=1) >= 0 and t.numel() <= stored and extent <= stored


def _check_tensor_archive(data: bytes, name: str) -> None:
    """torch.save writes its records uncompressed; a compressed one can inflate far beyond the file."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as inner:
            entries = inner.infolist()
    except zipfile.BadZipFile:
        return  # not a zip: torch.load's legacy format, refused or read by weights_only below
    packed = [e.filename for e in entries if e.compress_type != zipfile.ZIP_STORED]
    if packed or sum(e.file_size for e in entries) > MAX_TENSOR_BYTES:
        raise SessionError(f"{name} is not a Latent Steer session (its tensors inflate beyond their size)")


class _Decoder:
    """Builds a Session from checked metadata; every reference and value is checked on the way."""

    def __init__(self, meta: dict, tensors: dict[str, Tensor]) -> None:
        self.meta, self.tensors = meta, tensors
        self._planes: dict[int, LatentPlane] = {}
        self._deltas: dict[int, GeneratorDelta] = {}
        self._bases: dict[int, Any] = {}
        self._states: dict[int, EditState] = {}
        self._z_dim: int | None = None

    # -- typed getters ----------------------------------------------------------------------
    def _list(self, key: str, limit: int = MAX_STATES, where: dict | None = None) -> list:
        value = (self.meta if where is None else where).get(key, [])
        if not isinstance(value, list) or len(value) > limit:
            raise SessionError(f"its {key} are not a list of at most {limit:,}")
        return value

    @staticmethod
    def _int(value: Any, what: str, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise SessionError(f"its {what} is {value!r}, expected a whole number from {lo} to {hi}")
        return value

    @staticmethod
    def _float(value: Any, what: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SessionError(f"its {what} is {value!r}, expected a finite number")
        return float(value)

    @staticmethod
    def _str(value: Any, what: str, limit: int = MAX_NAME) -> str:
        if not isinstance(value, str) or len(value) > limit:
            raise SessionError(f"its {what} is not a text of at most {limit} characters")
        return value

    def _tensor(self, key: Any, what: str) -> Tensor:
        t = self.tensors.get(key) if isinstance(key, str) else None
        if t is None:
            raise SessionError(f"its {what} refers to a missing tensor {key!r}")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise SessionError(f"its {what} holds NaN or infinite values")
        return t

    def _z(self, key: Any, what: str) -> Tensor:
        t = self._tensor(key, what)
        if t.dtype != torch.float32 or t.dim() not in (1, 2) or (t.dim() == 2 and t.shape[0] != 1) \
                or not 1 <= t.numel() <= MAX_Z_DIM:
            raise SessionError(f"its {what} is not a face code (shape {tuple(t.shape)}, {t.dtype})")
        if float(t.abs().max()) > MAX_CODE_ABS:
            raise SessionError(f"its {what} holds values of {float(t.abs().max()):.3g}, far outside any face's code")
        if self._z_dim is None:
            self._z_dim = t.numel()
        elif t.numel() != self._z_dim:
            raise SessionError(f"its codes have different sizes ({self._z_dim} and {t.numel()})")
        return t

    def _maybe_image(self, key: Any, what: str) -> Tensor | None:
        if key is None:
            return None
        t = self._tensor(key, what)
        if t.dtype not in _IMAGE_DTYPES or t.dim() != 3 or t.shape[0] != 3 \
                or not (1 <= t.shape[1] <= MAX_IMAGE_SIDE and 1 <= t.shape[2] <= MAX_IMAGE_SIDE):
            raise SessionError(f"its {what} is not a picture (shape {tuple(t.shape)}, {t.dtype})")
        return t

    def _ref(self, value: Any, items: list, what: str) -> int:
        return self._int(value, f"{what} reference", 0, len(items) - 1 if items else -1)

    # -- objects ----------------------------------------------------------------------------
    def plane(self, i: int) -> LatentPlane:
        if i not in self._planes:
            entry = self._dict(self._list("planes")[i], "plane")
            labels = self._list("labels", 2, entry)
            plane = LatentPlane.__new__(LatentPlane)  # the stored axes are already orthonormal: keep them bit for bit
            plane.origin = self._z(entry.get("origin"), "plane origin").reshape(-1)
            plane.a = self._z(entry.get("a"), "plane axis").reshape(-1)
            plane.b = self._z(entry.get("b"), "plane axis").reshape(-1)
            plane.labels = tuple(self._str(x, "plane label") for x in labels) if len(labels) == 2 else ("u", "v")
            self._planes[i] = plane
        return self._planes[i]

    def delta(self, i: int) -> GeneratorDelta:
        if i not in self._deltas:
            entry = self._dict(self._list("deltas")[i], "photo generator")
            table = entry.get("tensors")
            if not isinstance(table, dict) or len(table) > 1000:
                raise SessionError("its photo generator has no table of tensors")
            tensors, halves = {}, {}
            for pname, key in table.items():
                t = self._tensor(key, "photo generator")
                if t.dtype not in _DELTA_DTYPES:
                    raise SessionError(f"its photo generator holds {t.dtype} values")
                if key not in halves:  # names sharing one tensor share its fp16 copy too
                    half = t.half()
                    if not bool(torch.isfinite(half).all()):
                        raise SessionError("its photo generator holds values too large for a generator change")
                    halves[key] = half
                tensors[self._str(pname, "generator parameter name")] = halves[key]
            self._deltas[i] = GeneratorDelta(base_hash=self._str(entry.get("base_hash"), "generator hash"),
                                             tensors=tensors, key=self._str(entry.get("key"), "generator key"),
                                             photo=self.placement(entry.get("photo")))
        return self._deltas[i]

    def placement(self, entry: Any) -> PhotoPlacement | None:
        """A photo face's photo and transform (absent in files written before paste-back GIFs)."""
        if entry is None:
            return None
        entry = self._dict(entry, "photo")
        image = self._maybe_image(entry.get("image"), "photo")
        values = self._list("transform", 6, entry)
        if image is None or len(values) != 6:
            raise SessionError("its photo has no picture or no 2×3 transform")
        m = np.array([self._float(v, "photo transform") for v in values]).reshape(2, 3)
        if abs(np.linalg.det(m[:, :2])) < 1e-9:
            raise SessionError("its photo transform cannot be inverted")
        return PhotoPlacement(photo=image.permute(1, 2, 0).contiguous().numpy(), transform=m)

    def base(self, i: int) -> Any:
        if i not in self._bases:
            entry = self._dict(self._list("bases")[i], "face base")
            kind = entry.get("kind")
            if kind == "seed":
                base: Any = SeedPoint(self._int(entry.get("seed"), "seed", 0, MAX_SEED))
            elif kind == "plane":
                planes = self._list("planes")
                base = PlanePoint(self.plane(self._ref(entry.get("plane"), planes, "plane")),
                                  self._float(entry.get("u"), "canvas position"),
                                  self._float(entry.get("v"), "canvas position"))
            elif kind == "z":
                base = self._z(entry.get("z"), "face code")
            else:
                raise SessionError(f"its face base has an unknown kind {kind!r}")
            self._bases[i] = base
        return self._bases[i]

    def state(self, value: Any) -> EditState:
        states = self._list("states")
        i = self._ref(value, states, "state")
        if i not in self._states:
            entry = self._dict(states[i], "state")
            alphas = entry.get("alphas", {})
            if not isinstance(alphas, dict) or len(alphas) > 1000:
                raise SessionError("its slider strengths are not a table")
            alphas = {self._str(k, "attribute name"): self._float(v, "slider strength") for k, v in alphas.items()}
            locked = frozenset(self._str(x, "attribute name") for x in self._list("locked", 1000, entry))
            seed = entry.get("seed")
            z = entry.get("z")
            generator = entry.get("generator")
            extra = {}
            if generator is not None:
                delta = self.delta(self._ref(generator, self._list("deltas"), "photo generator"))
                if "generator" not in EditState.__dataclass_fields__:
                    raise SessionError("it holds a photo's own generator, which this version cannot use")
                extra["generator"] = delta
            self._states[i] = EditState(
                base=self.base(self._ref(entry.get("base"), self._list("bases"), "face base")), alphas=alphas,
                locked=locked, label=self._str(entry.get("label", ""), "label", 1000),
                seed=None if seed is None else self._int(seed, "seed", 0, MAX_SEED),
                z=None if z is None else self._z(z, "face code"), **extra)
        return self._states[i]

    @staticmethod
    def _dict(value: Any, what: str) -> dict:
        if not isinstance(value, dict):
            raise SessionError(f"its {what} is not a table")
        return value

    def session(self) -> Session:
        models = self._dict(self.meta.get("models", {}), "models")
        z_dim = models.get("z_dim")
        attributes = models.get("attributes")
        info = ModelsInfo(
            z_dim=None if z_dim is None else self._int(z_dim, "code size", 1, MAX_Z_DIM),
            attributes=None if attributes is None else [self._str(a, "attribute name")
                                                        for a in self._list("attributes", 1000, models)],
            generator_hash=None if models.get("generator_hash") is None
            else self._str(models.get("generator_hash"), "generator hash"))
        hist = self._dict(self.meta.get("history"), "history")
        history = History(limit=self._int(hist.get("limit", 500), "history limit", 2, MAX_STATES))
        entries = self._list("states", history.limit, hist)
        if not entries:
            raise SessionError("its history is empty")
        for value in entries:
            history.push(self.state(value))
            history.seal()
        index = self._int(hist.get("index"), "history position", 0, len(entries) - 1)
        while history.index > index:
            history.undo()
        snapshots = Snapshots(limit=self._int(self.meta.get("snapshot_limit", 48), "snapshot limit", 1, 10_000))
        for entry in self._list("snapshots", snapshots.limit):
            entry = self._dict(entry, "snapshot")
            snapshots.add(self.state(entry.get("state")), self._maybe_image(entry.get("image"), "snapshot picture"),
                          self._str(entry.get("label", ""), "snapshot label", 1000))
        keyframes = Keyframes(limit=self._int(self.meta.get("keyframe_limit", 64), "pin limit", 1, 10_000))
        for entry in self._list("keyframes", keyframes.limit):
            entry = self._dict(entry, "pin")
            uv = entry.get("uv")
            if uv is not None:
                uv_list = self._list("uv", 2, entry)
                if len(uv_list) != 2:
                    raise SessionError("its pin position is not two numbers")
                uv = (self._float(uv_list[0], "pin position"), self._float(uv_list[1], "pin position"))
            keyframes.add(self.state(entry.get("state")), uv, self._maybe_image(entry.get("image"), "pin picture"))
        start = self.meta.get("start")
        return Session(history=history, snapshots=snapshots, keyframes=keyframes,
                       start=None if start is None else self.state(start), models=info)
