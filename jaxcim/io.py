"""jaxcim's file I/O: TOML study files, atomic writes, the output-folder lock, fingerprinted checkpoints, cleanup.

Used by the studies (`jaxcim.studies`), the command line and `jaxcim.nn.evaluate` (its ``checkpoint`` folder):

* `read_toml`: a TOML file as a dict, a missing or malformed file a one-line `StudyError`.
* `mapping_paths`: the ``STEM.npz`` / ``STEM.json`` pair of a learned mapping (`jaxcim.save_mapping` writes it,
  `jaxcim.load_mapping` reads it).

* `atomic_write_bytes` / `atomic_write_json` / `atomic_write_npz`: a file is either complete or absent, even if
  the process is killed (written to ``.NAME.tmpPID`` in the same folder, then ``os.replace``).
* `lock_output`: one job per output folder. An exclusive ``flock`` on ``<out>/.jaxcim.lock``; the kernel drops
  it when the process ends in any way (SIGKILL included), so a killed run leaves no stale lock. A second job
  on a locked folder is a `StudyError` naming the holder's pid.
* `write_npz` / `read_npz`: ``.npz`` files stamped with the study's fingerprint (``__fingerprint__``). Reading
  checks the stamp, the array names, shapes and dtypes and raises `CheckpointError` (a damaged or foreign file)
  instead of returning wrong rows. `chunk_name` / `list_chunks`: the ``chunk_FIRST_STOP.npz`` files of chunks.
* `read_state`: a checkpoint's ``state.json``, its keys checked; a damaged one is a `StudyError`.
* `fingerprint`: the hash that stamps a study's files. `start_checkpoint` / `load_chunks`: resume from a
  checkpoint folder (state checked, foreign or damaged chunks computed again) or start it over.
* `clean_checkpoint`: empties a checkpoint folder of the files jaxcim writes there (recognized by name:
  `is_checkpoint_file`), never anything else.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np

try:
    import fcntl
except ImportError:  # not a POSIX system: outputs are not locked
    fcntl = None


class StudyError(ValueError):
    """A mistake in a study file or command line: reported in one line, exit status 2.

    Defined here so that this module can raise it; `jaxcim.studies` re-exports it.
    """


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: unreadable, truncated, of another study, or of the wrong shape."""


# ----------------------------------------------------------------------------------------- reading


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """The content of a TOML file.

    Raises:
      StudyError: the file is missing, unreadable, or not valid TOML (the message names the file).
    """
    import tomllib

    p = Path(path)
    if not p.is_file():
        raise StudyError(f"study file not found: {p}")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise StudyError(f"{p}: not valid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise StudyError(f"{p}: cannot read: {e}") from None


def mapping_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """The ``(STEM.npz, STEM.json)`` files of a learned mapping; ``path`` names the stem or either file."""
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".npz", ".json") else p
    return stem.with_name(stem.name + ".npz"), stem.with_name(stem.name + ".json")


def saved_chunk_size(folder: str | os.PathLike | None, fingerprint: str | None = None) -> int | None:
    """The chunk size recorded in a checkpoint folder (``chunks.json``: ``{"chunk_size", "fingerprint"}``), or
    None: no folder, no record, a damaged record, or (``fingerprint`` given) the record of another study."""
    if folder is None or not (Path(folder) / "chunks.json").is_file():
        return None
    try:
        record = json.loads((Path(folder) / "chunks.json").read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(record, dict) or not is_positive_int(record.get("chunk_size")):
        return None
    if fingerprint is not None and record.get("fingerprint") != fingerprint:
        return None
    return record["chunk_size"]


# ----------------------------------------------------------------------------------------- atomic writes


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write a file so that it is either complete or absent, even if the process is killed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def json_default(o: Any) -> Any:
    """``json.dumps(default=...)`` for numpy and jax values (scalars as Python numbers, arrays as lists)."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if hasattr(o, "__array__"):
        return np.asarray(o).tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """`atomic_write_bytes` of ``obj`` as indented JSON (numpy/jax values converted)."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=json_default) + "\n").encode())


def atomic_write_npz(path: str | os.PathLike, **arrays: Any) -> None:
    """`atomic_write_bytes` of ``np.savez(**arrays)``."""
    buf = BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


# ----------------------------------------------------------------------------------------- output folders


def prepare_output(out: str | os.PathLike) -> Path:
    """Create the output folder and check that it is writable (`StudyError` otherwise).

    An empty name is refused (it would silently mean the current folder); pass ``"."`` for that.
    """
    if isinstance(out, str) and not out.strip():
        raise StudyError("the output folder name is empty; give a folder (--out DIR, '.' for the current folder)")
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise StudyError(f"output folder {out} is not writable: {e.strerror or e}") from None
    return out


def check_writable_file(path: str | os.PathLike, what: str = "output") -> Path:
    """Check, before any long computation, that ``path`` can be written later (its folder is created).

    Raises:
      StudyError: the folder cannot be created or written, or ``path`` is a folder.
    """
    path = Path(path)
    if path.is_dir():
        raise StudyError(f"{what} {path} is a folder, not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise StudyError(f"{what} {path} cannot be written: {e.strerror or e}") from None
    return path


LOCK_NAME = ".jaxcim.lock"
"""The lock file of an output folder (`lock_output`); it stays in the folder, unlocked, after a job."""

_HELD: dict[Path, list] = {}  # lock path -> [file descriptor, depth] of the locks this process holds


@contextlib.contextmanager
def lock_output(folder: str | os.PathLike, *, name: str = LOCK_NAME) -> Iterator[Path]:
    """Hold the exclusive lock of an output folder (created if needed) for the ``with`` block.

    The lock is an ``flock`` on ``folder/name``: the kernel releases it when the process ends, however it ends,
    so a killed job never leaves a stale lock. Reentrant within a process. Systems without ``fcntl`` (Windows)
    and file systems without ``flock`` run unlocked.

    Raises:
      StudyError: another process holds the lock (the message names its pid), or the lock file cannot be made.
    """
    folder = prepare_output(folder)
    path = (folder / name).resolve()
    held = _HELD.get(path)
    if held is not None:
        held[1] += 1
        try:
            yield path
        finally:
            held[1] -= 1
        return
    if fcntl is None:
        yield path
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise StudyError(f"cannot create the lock file {path}: {e.strerror or e}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            fd = -1  # no flock on this file system: run unlocked
        else:
            try:
                pid = path.read_text().strip()
            except (OSError, UnicodeDecodeError):
                pid = ""
            holder = f" (pid {pid})" if pid.isdigit() else ""
            raise StudyError(f"output folder {folder} is in use by another jaxcim run{holder}; wait for it to "
                             "finish, or choose another --out folder") from None
    if fd >= 0:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _HELD[path] = [fd, 1]
    try:
        yield path
    finally:
        if fd >= 0:
            del _HELD[path]
            os.close(fd)  # releases the flock


def job_lock_name() -> str:
    """The lock file name of this process: `LOCK_NAME`, with the process index appended in a multi-process JAX
    job (its processes share the output folder; each locks its own file)."""
    import jax

    return LOCK_NAME if jax.process_count() == 1 else f"{LOCK_NAME}.{jax.process_index()}"


# ----------------------------------------------------------------------------------------- checkpoint files


FINGERPRINT_KEY = "__fingerprint__"
"""The array of a fingerprinted ``.npz`` (`write_npz`) that holds the fingerprint of the study that wrote it."""

CHUNK_RE = re.compile(r"chunk_(\d{10})_(\d{10})\.npz")
"""Names of chunk files: instances FIRST .. STOP-1 (`chunk_name`)."""

CHECKPOINT_FILES = ("state.json", "models.npz", "chunks.json")
"""The other files jaxcim writes in checkpoint folders (besides chunks and the temporary files of atomic writes)."""

_TMP_RE = re.compile(r"\.(.+)\.tmp\d+")


def chunk_name(first: int, stop: int) -> str:
    """File name of the chunk of instances ``first .. stop-1``."""
    return f"chunk_{first:010d}_{stop:010d}.npz"


def is_checkpoint_file(name: str) -> bool:
    """Whether a file name is one jaxcim writes in a checkpoint folder (a chunk, a state or model file, or the
    temporary file of one of them), so that `clean_checkpoint` may delete it."""
    tmp = _TMP_RE.fullmatch(name)
    if tmp:
        name = tmp.group(1)
    return name in CHECKPOINT_FILES or CHUNK_RE.fullmatch(name) is not None


def list_chunks(folder: str | os.PathLike) -> list[tuple[int, int, Path]]:
    """``(first, stop, path)`` of the chunk files in ``folder``, sorted by ``first``, then longest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    for p in folder.iterdir():
        m = CHUNK_RE.fullmatch(p.name)
        if m and p.is_file():
            first, stop = int(m.group(1)), int(m.group(2))
            if stop > first:
                out.append((first, stop, p))
    return sorted(out, key=lambda c: (c[0], -c[1]))


def write_npz(path: str | os.PathLike, fingerprint: str, arrays: Mapping[str, Any]) -> None:
    """Write arrays atomically as ``.npz``, stamped with the study's ``fingerprint`` (`read_npz` checks it)."""
    if FINGERPRINT_KEY in arrays:
        raise ValueError(f"{FINGERPRINT_KEY!r} is reserved")
    atomic_write_npz(path, **{FINGERPRINT_KEY: np.asarray(str(fingerprint))},
                     **{k: np.asarray(v) for k, v in arrays.items()})


def read_npz(path: str | os.PathLike, fingerprint: str,
             expect: Mapping[str, tuple[tuple[int, ...], Any]] | None = None) -> dict[str, np.ndarray]:
    """The arrays of a `write_npz` file, checked.

    Args:
      path: the file.
      fingerprint: the fingerprint the file must carry.
      expect: ``{name: (shape, dtype)}``: the file must hold exactly these arrays (dtype None: any dtype).

    Raises:
      CheckpointError: the file is missing, unreadable or truncated, carries another (or no) fingerprint, or its
        arrays differ from ``expect``; the message says which.
    """
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise CheckpointError("not an .npz archive")
        with z:
            arrays = {k: z[k] for k in z.files}
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - truncated zip, bad header, short read...: all "damaged"
        raise CheckpointError(f"unreadable ({type(e).__name__}: {e})") from None
    stamp = arrays.pop(FINGERPRINT_KEY, None)
    if stamp is None:
        raise CheckpointError("carries no study fingerprint (written by another jaxcim version?)")
    if stamp.shape != () or str(stamp) != fingerprint:
        raise CheckpointError("belongs to another study (different fingerprint)")
    if expect is not None:
        if set(arrays) != set(expect):
            raise CheckpointError(f"holds arrays {sorted(arrays)}, expected {sorted(expect)}")
        for k, (shape, dtype) in expect.items():
            a = arrays[k]
            if a.shape != tuple(shape) or (dtype is not None and a.dtype != np.dtype(dtype)):
                raise CheckpointError(f"array {k!r} is {a.dtype}{list(a.shape)}, expected "
                                      f"{np.dtype(dtype) if dtype is not None else ''}{list(shape)}")
    return arrays


def deletes_files() -> bool:
    """Whether this process deletes checkpoint files: in a multi-process run only process 0 does (it alone writes
    them; another process deleting them would race its writes), in a single process always."""
    from jaxcim.distributed import is_primary

    return is_primary()


def remove_files(paths: Iterable[str | os.PathLike]) -> None:
    """Delete files (missing ones are fine); only call this with files jaxcim wrote (`is_checkpoint_file`).
    A no-op in processes other than 0 of a multi-process run (`deletes_files`)."""
    if not deletes_files():
        return
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            Path(p).unlink()


def clean_checkpoint(folder: str | os.PathLike, subfolders: Iterable[str] = ()) -> list[Path]:
    """Delete the files jaxcim writes (`is_checkpoint_file`) in ``folder`` and in its ``subfolders``; remove the
    folders that are then empty. Anything else (a user's files, other folders) is kept, never followed. Process 0
    alone cleans in a multi-process run (`deletes_files`): another process would remove the folder process 0 has
    just made.

    Returns:
      the entries that were kept (not jaxcim's), so that the caller can say so.
    """
    folder = Path(folder)
    kept: list[Path] = []
    if not folder.is_dir() or not deletes_files():
        return kept
    subfolders = set(subfolders)
    for p in sorted(folder.iterdir()):
        if p.name in subfolders and p.is_dir() and not p.is_symlink():
            kept += clean_checkpoint(p)
        elif is_checkpoint_file(p.name) and (p.is_file() or p.is_symlink()):
            remove_files([p])
        else:
            kept.append(p)
    with contextlib.suppress(OSError):
        folder.rmdir()  # only if empty
    return kept


def fingerprint(meta: Any, arrays: Iterable[Any] = ()) -> str:
    """SHA-256 of a JSON-able description (keys sorted; numpy values as numbers) and of arrays' bytes.

    A study's fingerprint covers everything that determines its per-instance results, so that a checkpoint of
    another study is recognized (`read_npz`)."""
    h = hashlib.sha256(json.dumps(meta, sort_keys=True, default=json_default).encode())
    for a in arrays:
        h.update(np.ascontiguousarray(np.asarray(a)).tobytes())
    return h.hexdigest()


def start_checkpoint(ckpt: str | os.PathLike, fp: str, resume: bool, fields: Mapping[str, Callable[[Any], bool]],
                     log: Callable[[str], Any], subfolders: Iterable[str] = (),
                     what: str = "the configuration") -> dict[str, Any] | None:
    """The state of a checkpoint folder to resume from (``state.json``, keys ``fields`` checked), or None: start
    over, with jaxcim's files in ``ckpt`` (and its ``subfolders``) deleted (`clean_checkpoint`).

    Raises:
      StudyError: ``resume`` and the checkpoint belongs to a study with another fingerprint (``what`` says what
        differs), or its state file is damaged.
    """
    ckpt = Path(ckpt)
    state = None
    if resume:
        state = read_state(ckpt / "state.json", {"fingerprint": is_str, **fields})
        if state is None:
            log("no checkpoint found: starting from the beginning")
        elif state["fingerprint"] != fp:
            raise StudyError(f"--resume: the study in {ckpt.parent} was run with a different configuration "
                             f"({what}); run without --resume to start over, or choose another --out folder")
    if state is None:
        kept = clean_checkpoint(ckpt, subfolders)
        if kept:
            log(f"{ckpt}: kept {len(kept)} file(s) that jaxcim did not write: {', '.join(p.name for p in kept[:5])}")
    return state


def load_chunks(ckpt: str | os.PathLike, fp: str, n: int, rows: Mapping[str, tuple[tuple[int, ...], Any]],
                log: Callable[[str], Any]) -> tuple[int, list[dict[str, np.ndarray]]]:
    """(instances done, chunk results) of the consecutive valid chunk files from instance 0 in ``ckpt``.

    Args:
      rows: ``{name: (shape of one instance's result, dtype)}``: what every chunk file must hold.

    A chunk file that is damaged, short or of another study ends the sequence (its instances run again); chunk
    files not used are deleted.
    """
    chunks = list_chunks(ckpt)
    used: set[Path] = set()
    parts, done = [], 0
    while done < n:
        for first, stop, f in chunks:
            if first != done:
                continue
            try:
                part = read_npz(f, fp, {k: ((stop - first, *shape), dtype) for k, (shape, dtype) in rows.items()})
            except CheckpointError as e:
                log(f"checkpoint {f.name}: {e}; its instances run again")
                continue
            parts.append(part)
            used.add(f)
            done = stop
            break
        else:
            break
    remove_files(f for _, _, f in chunks if f not in used)
    return done, parts


def is_str(v: Any) -> bool:
    return isinstance(v, str)


def is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def is_positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def is_finite_nonnegative(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


def read_state(path: str | os.PathLike, fields: Mapping[str, Callable[[Any], bool]]) -> dict[str, Any] | None:
    """A checkpoint's state file (a JSON object) with the keys ``fields`` checked (``{key: predicate}``).

    Returns:
      the state, or None if there is no file.

    Raises:
      StudyError: the file is unreadable, not a JSON object, or a key is missing or has a bad value.
    """
    path = Path(path)
    if not path.exists():
        return None

    def damaged(reason: str) -> StudyError:
        return StudyError(f"checkpoint {path} is damaged ({reason}); run without --resume to start over")

    try:
        state = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise damaged(f"not readable as JSON: {e}") from None
    if not isinstance(state, dict):
        raise damaged(f"expected a JSON object, got {type(state).__name__}")
    for key, ok in fields.items():
        if key not in state:
            raise damaged(f"no {key!r}")
        if not ok(state[key]):
            raise damaged(f"bad {key!r}: {state[key]!r}")
    return state


__all__ = [
    "CHUNK_RE", "CheckpointError", "FINGERPRINT_KEY", "LOCK_NAME", "StudyError", "atomic_write_bytes",
    "atomic_write_json", "atomic_write_npz", "check_writable_file", "chunk_name", "clean_checkpoint", "deletes_files",
    "fingerprint", "is_checkpoint_file", "job_lock_name", "json_default", "list_chunks", "load_chunks", "lock_output",
    "mapping_paths", "prepare_output", "read_npz", "read_state", "read_toml", "remove_files", "saved_chunk_size",
    "start_checkpoint", "write_npz",
]
