"""Checkpoint loading: every layout and wrapper, inferred hyperparameters, safe errors."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import pytest
import torch
from helpers import tiny_rrdbnet, to_layout
from safetensors.torch import load_file, save_file

from esrgan_plugin.arch import SRResNet, SRResNetConfig
from esrgan_plugin.arch.registry import detect_layout
from esrgan_plugin.errors import CheckpointError
from esrgan_plugin.models.loading import (
    build_from_state_dict,
    load_model,
    read_state_dict,
    save_model,
)


@pytest.mark.parametrize("layout", ["old", "esrgan", "basicsr"])
@pytest.mark.parametrize("scale", [1, 2, 4, 8])
def test_every_layout_loads_and_infers_hyperparameters(
    tmp_path: Path, layout: str, scale: int
) -> None:
    net = tiny_rrdbnet(scale=scale, nf=12, nb=2, gc=6)
    path = tmp_path / "m.pth"
    torch.save(to_layout(net.state_dict(), layout), path)
    model = load_model(path)
    info = model.describe()
    assert info["layout"] == layout
    assert (info["scale"], info["num_blocks"], info["num_features"], info["growth_channels"]) == (
        scale,
        2,
        12,
        6,
    )
    assert (info["in_channels"], info["out_channels"]) == (3, 3)
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model.module(x), net(x))


@pytest.mark.parametrize("wrapper", [None, "params", "params_ema"])
@pytest.mark.parametrize("prefix", ["", "module."])
def test_wrappers_and_dataparallel_prefix(tmp_path: Path, wrapper: str | None, prefix: str) -> None:
    state = {prefix + k: v for k, v in tiny_rrdbnet().state_dict().items()}
    obj: object = state if wrapper is None else {wrapper: state, "iter": 5}
    path = tmp_path / "m.pt"
    torch.save(obj, path)
    assert load_model(path).layout == "basicsr"


def test_params_ema_preferred_over_params(tmp_path: Path) -> None:
    ema, raw = tiny_rrdbnet(), tiny_rrdbnet()
    path = tmp_path / "both.pth"
    torch.save({"params": raw.state_dict(), "params_ema": ema.state_dict()}, path)
    loaded = load_model(path).module.state_dict()
    torch.testing.assert_close(loaded["conv_first.weight"], ema.state_dict()["conv_first.weight"])


def test_grey_and_odd_channel_counts_inferred(tmp_path: Path) -> None:
    path = tmp_path / "grey.pth"
    torch.save(tiny_rrdbnet(in_ch=1, out_ch=1).state_dict(), path)
    info = load_model(path).describe()
    assert (info["in_channels"], info["out_channels"], info["scale"]) == (1, 1, 4)


def test_safetensors_written_canonical_with_metadata(tmp_path: Path) -> None:
    net = tiny_rrdbnet(scale=2, nf=8, nb=1, gc=4)
    path = save_model(tmp_path / "m.safetensors", net, {"trained_by": "test"})
    keys = set(load_file(str(path)))
    assert "body.0.rdb1.conv1.weight" in keys and "conv_body.weight" in keys
    state, meta = read_state_dict(path)
    assert meta["architecture"] == "RRDBNet" and meta["scale"] == "2"
    assert (meta["num_features"], meta["num_blocks"], meta["growth_channels"]) == ("8", "1", "4")
    assert meta["channels"] == "3->3" and meta["trained_by"] == "test"
    assert load_model(path).metadata["trained_by"] == "test"
    assert not list(tmp_path.glob("*.tmp"))


def test_srresnet_round_trip(tmp_path: Path) -> None:
    net = SRResNet(SRResNetConfig(num_features=8, num_blocks=2)).eval()
    path = save_model(tmp_path / "srresnet.safetensors", net)
    model = load_model(path)
    assert model.architecture == "SRResNet" and model.scale == 4 and model.config.num_blocks == 2
    x = torch.rand(1, 3, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(model.module(x), net(x))


def test_unknown_layout_names_known_layouts_and_keys() -> None:
    state = {
        "layers.0.attn.qkv.weight": torch.zeros(3, 3),
        "patch_embed.proj.weight": torch.zeros(1),
    }
    with pytest.raises(CheckpointError) as err:
        detect_layout(state, "swinir.pth")
    message = str(err.value)
    assert "swinir.pth" in message and "layers.0.attn.qkv.weight" in message
    assert all(name in message for name in ("old", "esrgan", "basicsr"))
    assert "\n" not in message


def test_missing_and_extra_keys_are_named() -> None:
    state = tiny_rrdbnet().state_dict()
    del state["conv_hr.bias"]
    state["conv_extra.weight"] = torch.zeros(1)
    with pytest.raises(
        CheckpointError, match=r"missing keys conv_hr\.bias.*unexpected keys conv_extra\.weight"
    ):
        build_from_state_dict(state, source="x.pth")


def test_wrong_shape_is_named() -> None:
    state = tiny_rrdbnet().state_dict()
    state["conv_hr.weight"] = torch.zeros(8, 8, 1, 1)
    with pytest.raises(CheckpointError, match=r"conv_hr\.weight has shape \(8, 8, 1, 1\)"):
        build_from_state_dict(state)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_files(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"m{suffix}"
    state = tiny_rrdbnet().state_dict()
    if suffix == ".pth":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(path)


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pwned",))


def test_pickle_that_runs_code_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"conv_first.weight": torch.zeros(1), "payload": _Exploit()}, path)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_model(path)
    assert "pwned" not in capsys.readouterr().out


def test_legacy_raw_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "raw.pth"
    buffer = io.BytesIO()
    pickle.dump(_Exploit(), buffer)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(CheckpointError):
        load_model(path)


def test_missing_file_and_wrong_extension(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nope.pth")
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unsupported model file extension"):
        load_model(bad)


def test_non_tensor_container_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="expected a state dict"):
        load_model(path)


def test_save_refuses_non_safetensors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="only .safetensors"):
        save_model(tmp_path / "m.pth", tiny_rrdbnet())


def test_unwritable_model_output_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CheckpointError, match="cannot write model file"):
        save_model(blocker / "m.safetensors", tiny_rrdbnet())


def test_batch_norm_srresnet_round_trips_its_own_state_dict() -> None:
    """BN's int64 ``num_batches_tracked`` counters are part of the state, not a wrong dtype."""
    from esrgan_plugin.arch import SRResNet, SRResNetConfig

    net = SRResNet(SRResNetConfig(num_blocks=2, num_features=8, batch_norm=True)).eval()
    loaded = build_from_state_dict(net.state_dict())
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(loaded.module.eval()(x), net(x))
    as_float = {k: v.float() for k, v in net.state_dict().items()}  # counters saved as floats
    build_from_state_dict(as_float)
    bad = {k: v.long() if k == "conv_first.weight" else v for k, v in net.state_dict().items()}
    with pytest.raises(CheckpointError, match="conv_first.weight has dtype torch.int64"):
        build_from_state_dict(bad)
