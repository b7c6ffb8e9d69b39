"""Training end to end on tiny models: both stages update their networks, checkpoints load,
resume is exact, NaN stops the run, and the exported generator upscales."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from esrgan_plugin.cli import main as esrgan_main
from esrgan_plugin.models.loading import load_model
from pipelines.io.images import write_image
from training.config import load_config
from training.errors import TrainingError
from training.loop import train
from training.state import CHECKPOINT_NAME, load_checkpoint


def photo(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([np.sin(xx / (3 + c + seed)) * np.cos(yy / (5 + c)) for c in range(3)], -1)
    return ((base * 0.4 + 0.5 + rng.normal(0, 0.03, (h, w, 3))).clip(0, 1) * 255).astype(np.uint8)


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    for i in range(3):
        write_image(tmp_path / "imgs" / f"p{i}.png", photo(140, 136, i))
    write_image(tmp_path / "val" / "v.png", photo(48, 44, 7))
    return tmp_path


def write_config(folder: Path, stage: str = "psnr", iterations: int = 4, extra: str = "") -> Path:
    hr = 128 if stage == "gan" else 16
    text = f"""\
name: tiny-{stage}
stage: {stage}
output_dir: run-{stage}
seed: 3
model: {{scale: 4, num_features: 8, num_blocks: 1, growth_channels: 4}}
data:
  train: {{kind: folder, path: imgs}}
  validation: {{kind: folder, path: val}}
  hr_size: {hr}
  batch_size: 2
optim:
  iterations: {iterations}
checkpoint_every: 2
validate_every: 2
log_every: 1
{extra}"""
    path = folder / f"{stage}.yaml"
    path.write_text(text)
    return path


def test_psnr_stage_updates_generator_and_writes_loadable_outputs(experiment: Path) -> None:
    config = load_config(write_config(experiment))
    result = train(config, progress=False)
    run = experiment / "run-psnr"
    state = load_checkpoint(run / CHECKPOINT_NAME)
    assert state["iteration"] == 4 and "optimizer_g" in state
    model = load_model(result.generator_path)
    assert model.metadata["stage"] == "psnr" and model.metadata["losses"] == "L1"
    assert np.isfinite(result.last_losses["l_pix"])
    assert {"val_psnr_y", "val_ssim_y"} <= set(result.validation)
    log = (run / "log.csv").read_text().splitlines()
    assert log[0].startswith("iteration") and len(log) == 5


def test_gan_stage_updates_generator_and_discriminator(experiment: Path) -> None:
    train(load_config(write_config(experiment)), progress=False)
    extra = "gan: {pretrained: run-psnr, vgg_weights: random, discriminator_features: 4, perceptual_layers: {conv2_2: 1.0}}\n"
    config = load_config(write_config(experiment, "gan", iterations=1, extra=extra))
    before = load_model(experiment / "run-psnr" / "generator.safetensors").module.state_dict()
    result = train(config, progress=False)
    state = load_checkpoint(experiment / "run-gan" / CHECKPOINT_NAME)
    assert "discriminator" in state and "optimizer_d" in state and state["optimizer_d"]["state"]
    after = load_model(result.generator_path)
    assert not torch.equal(
        before["conv_last.weight"], after.module.state_dict()["conv_last.weight"]
    )
    assert after.metadata["vgg_weights"] == "random"
    assert {"l_g", "l_d", "l_percep", "l_g_gan", "l_pix"} <= set(result.last_losses)


def test_resume_is_exact(experiment: Path) -> None:
    extra = "optim: {iterations: 6, ema_decay: 0.9, milestones: [3]}\n"
    text = (
        write_config(experiment, iterations=6).read_text().replace("optim:\n  iterations: 6\n", "")
        + extra
    )
    (experiment / "a.yaml").write_text(text.replace("output_dir: run-psnr", "output_dir: straight"))
    (experiment / "b.yaml").write_text(text.replace("output_dir: run-psnr", "output_dir: resumed"))
    straight = train(load_config(experiment / "a.yaml"), progress=False)
    train(load_config(experiment / "b.yaml"), stop_at=3, progress=False)
    resumed = train(load_config(experiment / "b.yaml"), resume=True, progress=False)
    assert resumed.last_losses == straight.last_losses
    a = load_checkpoint(experiment / "straight" / CHECKPOINT_NAME)
    b = load_checkpoint(experiment / "resumed" / CHECKPOINT_NAME)
    for key in ("generator", "ema"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), name
    rows_a = (experiment / "straight" / "log.csv").read_text().splitlines()
    rows_b = (experiment / "resumed" / "log.csv").read_text().splitlines()
    assert [r.split(",")[:3] for r in rows_a] == [r.split(",")[:3] for r in rows_b]


def test_existing_experiment_needs_resume(experiment: Path) -> None:
    config = load_config(write_config(experiment, iterations=2))
    train(config, progress=False)
    with pytest.raises(TrainingError, match="--resume"):
        train(config, progress=False)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(
    experiment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(write_config(experiment, iterations=4))
    train(config, stop_at=2, progress=False)
    good = (experiment / "run-psnr" / CHECKPOINT_NAME).read_bytes()
    import training.loop as loop

    real = loop.psnr_step

    def poisoned(*args: object, **kwargs: object) -> dict[str, torch.Tensor]:
        out = real(*args, **kwargs)  # type: ignore[arg-type]
        return {"l_pix": out["l_pix"] * float("nan")}

    monkeypatch.setattr(loop, "psnr_step", poisoned)
    with pytest.raises(TrainingError, match="non-finite loss l_pix=nan at iteration 3"):
        train(config, resume=True, progress=False)
    assert (experiment / "run-psnr" / CHECKPOINT_NAME).read_bytes() == good


def test_esrgan_train_command_and_upscale_with_result(
    experiment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(experiment, iterations=2)
    assert esrgan_main(["train", str(path), "--quiet"]) == 0
    assert "trained tiny-psnr to iteration 2" in capsys.readouterr().out
    out = experiment / "up.png"
    generator = experiment / "run-psnr" / "generator.safetensors"
    assert (
        esrgan_main(
            [
                "upscale",
                str(experiment / "val" / "v.png"),
                "-o",
                str(out),
                "--model",
                str(generator),
            ]
        )
        == 0
    )
    assert out.is_file()
    bad = experiment / "bad.yaml"
    bad.write_text("name: x\nstage: psnr\n")
    assert esrgan_main(["train", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.yaml" in err and err.count("\n") == 1


@pytest.mark.parametrize("batch_norm", [False, True])
def test_srresnet_ablation_trains_and_loads(experiment: Path, batch_norm: bool) -> None:
    text = (
        write_config(experiment, iterations=2)
        .read_text()
        .replace(
            "model: {scale: 4, num_features: 8, num_blocks: 1, growth_channels: 4}",
            f"model: {{architecture: srresnet, batch_norm: {str(batch_norm).lower()}, scale: 4, num_features: 8, num_blocks: 2}}",
        )
    )
    (experiment / "sr.yaml").write_text(text)
    result = train(load_config(experiment / "sr.yaml"), progress=False)
    model = load_model(result.generator_path)
    assert model.architecture == "SRResNet" and model.config.batch_norm is batch_norm


def test_batch_norm_is_refused_for_rrdbnet(experiment: Path) -> None:
    text = (
        write_config(experiment)
        .read_text()
        .replace("num_blocks: 1,", "num_blocks: 1, batch_norm: true,")
    )
    (experiment / "bn.yaml").write_text(text)
    with pytest.raises(TrainingError, match="batch_norm applies to the srresnet architecture only"):
        load_config(experiment / "bn.yaml")


def test_tensorboard_events_are_written(experiment: Path) -> None:
    pytest.importorskip("torch.utils.tensorboard", reason="tensorboard is an optional extra")
    event_file_loader = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator"
    )
    train(load_config(write_config(experiment, iterations=2)), progress=False)
    folder = experiment / "run-psnr" / "tensorboard"
    accumulator = event_file_loader.EventAccumulator(str(folder))
    accumulator.Reload()
    assert {"l_pix", "lr", "val_psnr_y"} <= set(accumulator.Tags()["scalars"])
    assert [e.step for e in accumulator.Scalars("l_pix")] == [1, 2]


def test_gan_stage_resume_is_exact(experiment: Path) -> None:
    train(load_config(write_config(experiment, iterations=1)), progress=False)
    extra = (
        "gan: {pretrained: run-psnr, vgg_weights: random, discriminator_features: 4, "
        "perceptual_layers: {conv2_2: 1.0}}\n"
    )
    text = write_config(experiment, "gan", iterations=2, extra=extra).read_text()
    (experiment / "a.yaml").write_text(text.replace("output_dir: run-gan", "output_dir: straight"))
    (experiment / "b.yaml").write_text(text.replace("output_dir: run-gan", "output_dir: resumed"))
    straight = train(load_config(experiment / "a.yaml"), progress=False)
    train(load_config(experiment / "b.yaml"), stop_at=1, progress=False)
    resumed = train(load_config(experiment / "b.yaml"), resume=True, progress=False)
    assert resumed.last_losses == straight.last_losses and "l_d_real" in straight.last_losses
    a = load_checkpoint(experiment / "straight" / CHECKPOINT_NAME)
    b = load_checkpoint(experiment / "resumed" / CHECKPOINT_NAME)
    for key in ("generator", "discriminator"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name}"
    assert a["optimizer_d"]["state"][0]["exp_avg"].abs().sum() > 0
    assert torch.equal(
        a["optimizer_d"]["state"][0]["exp_avg"], b["optimizer_d"]["state"][0]["exp_avg"]
    )


def test_log_rows_only_every_n_and_instrumented(
    experiment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from training.instruments import Window

    calls: list[int] = []
    real = Window.reduce

    def counting(self: Window, *args: object) -> object:
        calls.append(self.iterations)
        return real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Window, "reduce", counting)
    text = write_config(experiment, iterations=6).read_text()
    text = text.replace("log_every: 1", "log_every: 3").replace(
        "checkpoint_every: 2", "checkpoint_every: 6"
    )
    text = text.replace("validate_every: 2", "validate_every: 6")
    path = experiment / "every3.yaml"
    path.write_text(text + "keep_checkpoints: 2\nsnapshot_every: 2\n")
    train(load_config(path), progress=False)
    assert calls == [2, 1, 1, 2]  # syncs at 2 (snapshot), 3 (log), 4 (snapshot), 6: none in between
    run = experiment / "run-psnr"
    header, *rows = (run / "log.csv").read_text().splitlines()
    columns = header.split(",")
    for column in ("l_pix", "lr", "iterations_per_s", "samples_per_s", "data_wait"):
        assert column in columns
    assert {"peak_memory_mb", "world_size", "val_psnr_y"} <= set(columns)
    assert [int(r.split(",")[0]) for r in rows] == [2, 3, 4, 6]
    snapshots = sorted(p.name for p in (run / "snapshots").iterdir())
    assert snapshots == [f"generator_{i:08d}.safetensors" for i in (2, 4, 6)]
    assert load_model(run / "snapshots" / snapshots[0]).metadata["iteration"] == "2"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["checkpoint_00000006.pt"]


def test_sigterm_writes_a_checkpoint_and_the_run_resumes(experiment: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    text = write_config(experiment, iterations=100000).read_text()
    text = text.replace("checkpoint_every: 2", "checkpoint_every: 100000")
    path = experiment / "long.yaml"
    path.write_text(text.replace("validate_every: 2", "validate_every: 100000"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "esrgan_plugin", "train", str(path), "--quiet"]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    log = experiment / "run-psnr" / "log.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not log.is_file() or log.read_text().count("\n") < 3):
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert "stopped by SIGTERM" in err and "--resume" in err
    state = load_checkpoint(experiment / "run-psnr" / CHECKPOINT_NAME)
    assert 2 <= state["iteration"] < 100000
    config = load_config(path).model_copy(
        update={
            "optim": load_config(path).optim.model_copy(
                update={"iterations": state["iteration"] + 1}
            )
        }
    )
    assert train(config, resume=True, progress=False).iteration == state["iteration"] + 1


def test_threads_setting_and_bad_overrides(
    experiment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = torch.get_num_threads()
    try:
        path = write_config(experiment, iterations=1, extra="threads: 1\n")
        train(load_config(path), progress=False)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(SystemExit) as exit_info:
        esrgan_main(["train", str(path), "--iterations", "0"])
    assert exit_info.value.code == 2
    assert "--iterations: Input should be greater than or equal to 1" in capsys.readouterr().err


@pytest.mark.slow
def test_compiled_training_step_equals_the_eager_one(experiment: Path) -> None:
    """`compile: true` (torch.compile of G's forward, inductor on the CPU) trains the same weights."""
    import shutil

    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("torch.compile's CPU backend needs a C++ compiler")
    eager = train(load_config(write_config(experiment, iterations=3)), progress=False)
    compiled_path = write_config(experiment, iterations=3, extra="compile: true\n")
    text = compiled_path.read_text().replace("output_dir: run-psnr", "output_dir: run-compiled")
    compiled_path.write_text(text)
    compiled = train(load_config(compiled_path), progress=False)
    a = load_model(eager.generator_path).module.state_dict()
    b = load_model(compiled.generator_path).module.state_dict()
    assert eager.generator_path != compiled.generator_path
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5
