"""Fuzzing model files: state dicts of every layout with keys, shapes and dtypes changed and
wrappers nested, pickles that try to import or call things, and safetensors headers that lie."""

from __future__ import annotations

import json
import os
import pickle
import struct
import tempfile
from pathlib import Path
from typing import Any

import torch
from helpers import tiny_rrdbnet, to_layout
from hypothesis import given
from hypothesis import strategies as st
from properties import result_or_error
from safetensors.torch import save_file

from esrgan_plugin.arch.compact import CompactConfig, SRVGGNetCompact
from esrgan_plugin.arch.srresnet import SRResNet, SRResNetConfig
from esrgan_plugin.errors import CheckpointError
from esrgan_plugin.models.loading import LoadedModel, load_model

SENTINEL_ENV = "ESRGAN_FUZZ_SENTINEL"
"""Environment variable naming the file that :func:`ran_code` creates if a pickle ever runs it."""


def ran_code(*args: object) -> None:
    """What a malicious pickle calls: evidence (a file) that code from a file ran."""
    Path(os.environ[SENTINEL_ENV]).write_text(repr(args))


def _seed_state(kind: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    if kind.startswith("rrdbnet"):
        _, scale, layout = kind.split("-")
        net = tiny_rrdbnet(scale=int(scale), nf=4, nb=1, gc=2)
        return to_layout(net.state_dict(), layout)
    if kind == "compact":
        config = CompactConfig(num_features=4, num_convs=2, upscale=2)
        return dict(SRVGGNetCompact(config).state_dict())
    config = SRResNetConfig(num_features=4, num_blocks=1, scale=2)
    return dict(SRResNet(config).state_dict())


SEEDS = [f"rrdbnet-{s}-{layout}" for s in (1, 2, 4, 8) for layout in ("basicsr", "esrgan", "old")]
SEEDS += ["compact", "srresnet"]
DTYPES = (torch.float16, torch.bfloat16, torch.float64, torch.int8, torch.int64, torch.bool)
WRAPPERS = ("params_ema", "params", "state_dict", "model_state_dict", "model", "net", "module")


@st.composite
def shapes(draw: st.DrawFn) -> tuple[int, ...]:
    return tuple(draw(st.lists(st.integers(0, 9), min_size=0, max_size=5)))


@st.composite
def state_dicts(draw: st.DrawFn) -> Any:
    """A seed state dict with keys dropped, renamed or added, shapes and dtypes changed, wrapped."""
    state: dict[Any, Any] = _seed_state(draw(st.sampled_from(SEEDS)))
    keys = list(state)
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(("drop", "rename", "reshape", "dtype", "add", "prefix")))
        key = draw(st.sampled_from(keys))
        if key not in state:
            continue
        if kind == "drop":
            del state[key]
        elif kind == "rename":
            state[draw(st.sampled_from(keys + ["body.7.rdb1.conv1.weight", "conv_up9.weight"]))] = (
                state.pop(key)
            )
        elif kind == "reshape":
            state[key] = torch.zeros(draw(shapes()))
        elif kind == "dtype":
            state[key] = state[key].to(draw(st.sampled_from(DTYPES)))
        elif kind == "add":
            state[draw(st.text(max_size=30))] = draw(
                st.sampled_from((torch.zeros(2), 3, "text", None, [1, 2], {"a": 1}))
            )
        elif kind == "prefix":
            state = {f"module.{k}": v for k, v in state.items()}
            keys = list(state)
    for _ in range(draw(st.integers(0, 3))):
        wrapper = draw(st.sampled_from(WRAPPERS))
        outer = {wrapper: state}
        if draw(st.booleans()):
            outer[draw(st.sampled_from(WRAPPERS))] = draw(
                st.sampled_from(({}, {"iteration": 5}, [state], torch.zeros(1)))
            )
        state = outer
    if draw(st.integers(0, 9)) == 0:
        state = draw(st.sampled_from(([state], (state,), 7, "weights", None)))
    return state


def _check_model(loaded: LoadedModel) -> None:
    """A model that loads runs: its output has the scale and channels it claims."""
    x = torch.rand(1, loaded.in_channels, 8, 8)
    with torch.no_grad():
        y = loaded.module(x)
    assert tuple(y.shape) == (1, loaded.out_channels, 8 * loaded.scale, 8 * loaded.scale)


def _save(obj: Any, path: Path) -> bool:
    """Write ``obj`` as ``path``'s format; False when safetensors cannot hold it."""
    if path.suffix == ".safetensors":
        if not isinstance(obj, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
        ):
            return False
        save_file({k: v.contiguous() for k, v in obj.items()}, str(path))
        return True
    torch.save(obj, path)
    return True


@given(state_dicts(), st.sampled_from((".pth", ".pt", ".safetensors")))
def test_mutated_state_dicts_load_or_fail_cleanly(state: Any, suffix: str) -> None:
    """Any state dict: a model that runs at the scale it claims, or a one-line CheckpointError."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"model{suffix}"
        if not _save(state, path):
            return
        before = path.read_bytes()
        outcome = result_or_error(lambda: load_model(path), CheckpointError)
        if isinstance(outcome, LoadedModel):
            _check_model(outcome)
        assert path.read_bytes() == before


class Evil:
    """An object whose unpickling calls ``ran_code`` (or another callable) with arguments."""

    def __init__(self, target: Any, args: tuple[Any, ...]) -> None:
        self.target, self.args = target, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.target, self.args


TARGETS = (ran_code, os.system, eval, exec, getattr, __import__, print, Path.write_text)


@st.composite
def evil_objects(draw: st.DrawFn) -> Any:
    """A state dict with an object that runs code when unpickled, somewhere inside."""
    target = draw(st.sampled_from(TARGETS))
    evil = Evil(target, ("touch /tmp/esrgan-fuzz-pwned",) if target is not ran_code else ("x",))
    state: dict[str, Any] = dict(_seed_state("rrdbnet-4-basicsr"))
    key = draw(st.sampled_from([*state, "extra"]))
    state[key] = evil
    for _ in range(draw(st.integers(0, 2))):
        state = {draw(st.sampled_from(WRAPPERS)): state}
    return state


OPCODE_FRAGMENTS = (
    pickle.PROTO + b"\x02",
    pickle.GLOBAL + b"tests.fuzz.test_fuzz_checkpoints\nran_code\n",
    pickle.GLOBAL + b"os\nsystem\n",
    pickle.GLOBAL + b"builtins\neval\n",
    pickle.GLOBAL + b"torch\nload\n",
    pickle.GLOBAL + b"collections\nOrderedDict\n",
    pickle.GLOBAL + b"torch._utils\n_rebuild_tensor_v2\n",
    pickle.SHORT_BINUNICODE + b"\x01x",
    pickle.SHORT_BINUNICODE + b"\x05touch",
    pickle.BININT1 + b"\x03",
    pickle.EMPTY_TUPLE,
    pickle.EMPTY_DICT,
    pickle.EMPTY_LIST,
    pickle.MARK,
    pickle.TUPLE,
    pickle.TUPLE1,
    pickle.REDUCE,
    pickle.BUILD,
    pickle.SETITEM,
    pickle.SETITEMS,
    pickle.APPENDS,
    pickle.INST + b"os\nsystem\n",
    pickle.OBJ,
    pickle.NEWOBJ,
    pickle.STACK_GLOBAL,
    pickle.BINPERSID,
    pickle.EXT1 + b"\x01",
    pickle.MEMOIZE,
    pickle.BINGET + b"\x00",
    pickle.NONE,
    pickle.STOP,
)


@given(st.lists(st.sampled_from(OPCODE_FRAGMENTS), max_size=24), st.booleans())
def test_random_pickles_never_run_code(fragments: list[bytes], as_zip: bool) -> None:
    """Opcode streams that import and call things: refused, and nothing they name is run."""
    stream = b"".join(fragments) + pickle.STOP
    _assert_refused_without_running(stream, as_zip)


@given(evil_objects())
def test_malicious_checkpoints_never_run_code(obj: Any) -> None:
    """torch.save'd state dicts with a code-running object inside: refused, never run."""
    _assert_refused_without_running(obj, True)


def _assert_refused_without_running(payload: Any, as_zip: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sentinel = Path(tmp) / "ran"
        path = Path(tmp) / "model.pth"
        if isinstance(payload, bytes):
            if as_zip:
                import zipfile

                with zipfile.ZipFile(path, "w") as z:
                    z.writestr("archive/data.pkl", payload)
                    z.writestr("archive/version", "3\n")
                    z.writestr("archive/byteorder", "little")
            else:
                path.write_bytes(payload)
        else:
            torch.save(payload, path)
        os.environ[SENTINEL_ENV] = str(sentinel)
        try:
            outcome = result_or_error(lambda: load_model(path), CheckpointError)
        finally:
            del os.environ[SENTINEL_ENV]
        assert not sentinel.exists(), "a pickle ran code"
        assert not Path("/tmp/esrgan-fuzz-pwned").exists(), "a pickle ran a shell command"
        if isinstance(outcome, LoadedModel):
            _check_model(outcome)


# --------------------------------------------------------------------------- safetensors


def _safetensors_seed() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "seed.safetensors"
        state = {k: v.contiguous() for k, v in _seed_state("rrdbnet-4-basicsr").items()}
        save_file(state, str(path), metadata={"format": "esrgan-pipelines/1", "scale": "4"})
        return path.read_bytes()


SAFETENSORS_SEED = _safetensors_seed()
ST_DTYPES = ("F32", "F16", "BF16", "F64", "I8", "U8", "I64", "BOOL", "F8_E4M3", "X99", "", 7)


@st.composite
def lying_safetensors(draw: st.DrawFn) -> bytes:
    """The seed file with its JSON header changed: dtypes, shapes, offsets, lengths that lie."""
    (length,) = struct.unpack("<Q", SAFETENSORS_SEED[:8])
    header = json.loads(SAFETENSORS_SEED[8 : 8 + length])
    body = SAFETENSORS_SEED[8 + length :]
    names = [k for k in header if k != "__metadata__"]
    for _ in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from(names))
        entry = header.get(name)
        kind = draw(
            st.sampled_from(("dtype", "shape", "offsets", "drop", "metadata", "garbage", "type"))
        )
        if not isinstance(entry, dict):
            continue
        if kind == "dtype":
            entry["dtype"] = draw(st.sampled_from(ST_DTYPES))
        elif kind == "shape":
            entry["shape"] = draw(
                st.lists(st.integers(-2, 2**40), max_size=5) | st.just("x") | st.none()
            )
        elif kind == "offsets":
            entry["data_offsets"] = draw(
                st.lists(st.integers(-5, 2**64), min_size=0, max_size=3) | st.just("0")
            )
        elif kind == "drop":
            del header[name]
        elif kind == "metadata":
            header["__metadata__"] = draw(
                st.sampled_from(
                    ({"scale": 4}, {"output_scale": "x"}, [], "text", None, {"a": ["b"]})
                )
            )
        elif kind == "garbage":
            header[draw(st.text(max_size=10))] = draw(st.sampled_from((1, "x", [], {})))
        elif kind == "type":
            header[name] = draw(st.sampled_from((None, 1, "x", [])))
    text = json.dumps(header).encode()
    declared = len(text)
    if draw(st.booleans()):
        declared = draw(st.sampled_from((0, 1, 7, declared - 1, declared + 1, 2**63, 2**64 - 1)))
    body = body[: draw(st.integers(0, len(body)))] if draw(st.booleans()) else body
    return struct.pack("<Q", max(0, declared)) + text + body


@given(lying_safetensors())
def test_lying_safetensors_headers(data: bytes) -> None:
    """A safetensors file whose header lies: a model that runs, or a one-line CheckpointError."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        path.write_bytes(data)
        outcome = result_or_error(lambda: load_model(path), CheckpointError)
        if isinstance(outcome, LoadedModel):
            _check_model(outcome)
