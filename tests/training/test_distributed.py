"""DDP under torchrun with gloo on the CPU: disjoint shares of the global batch, 2 ranks equal to
1 rank within float tolerance, a SIGTERM-killed 2-rank run resumed exactly, and resume with
another world size."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from training.config import load_config
from training.data import BatchSchedule
from training.distributed import check_batch, from_environment, shard
from training.errors import TrainingError
from training.loop import train
from training.state import CHECKPOINT_NAME, load_checkpoint

pytestmark = pytest.mark.timeout(600)  # three torchrun launches; slow on a loaded 2-core machine

CONFIG = """\
name: ddp
stage: psnr
output_dir: {out}
seed: 5
model: {{scale: 4, num_features: 8, num_blocks: 1, growth_channels: 4}}
data:
  train: {{kind: skimage, names: [astronaut, coffee, camera]}}
  hr_size: 32
  batch_size: 4
optim: {{iterations: 6, milestones: [4]}}
checkpoint_every: 3
validate_every: 100
log_every: 1
"""


def test_rank_shares_are_disjoint_and_make_the_global_batch() -> None:
    whole = BatchSchedule(5, 4, seed=1)
    ranks = [BatchSchedule(5, 4, seed=1, rank=r, world_size=2) for r in range(2)]
    for iteration in (0, 1, 7):
        shares = [r.keys(iteration) for r in ranks]
        assert shares[0] + shares[1] == whole.keys(iteration)
        assert not set(shares[0]) & set(shares[1])
        assert shard(whole.keys(iteration), 1, 2) == shares[1]


def test_global_batch_must_split_over_the_ranks() -> None:
    ctx = from_environment({"WORLD_SIZE": "3", "RANK": "1", "LOCAL_RANK": "1"})
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.is_main) == (1, 3, 1, False)
    with pytest.raises(TrainingError, match="batch_size 4 .* does not split evenly over 3 ranks"):
        check_batch(4, ctx)
    with pytest.raises(TrainingError, match="RANK 3 is not in"):
        from_environment({"WORLD_SIZE": "2", "RANK": "3"})


def _config(folder: Path, out: str) -> Path:
    path = folder / f"{out}.yaml"
    path.write_text(CONFIG.format(out=out))
    return path


def _command(config: Path, *args: str, ranks: int = 2) -> list[str]:
    """``torchrun --standalone --nproc_per_node ranks esrgan train CONFIG ...`` (gloo, CPU)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [f"--nproc_per_node={ranks}", "-m", "esrgan_plugin", "train", str(config)]
    return [*command, "--quiet", *args]


def _env(config: Path) -> dict[str, str]:
    """One thread per rank, no GPU; torchrun's ``torchelastic_*`` folders beside the config."""
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "TMPDIR": str(config.parent),
    }


def _torchrun(config: Path, *args: str) -> None:
    done = subprocess.run(
        _command(config, *args), env=_env(config), capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]


def _torchrun_killed(config: Path) -> str:
    """Start a 2-rank run, SIGTERM torchrun once rank 0 has logged iteration 1; its stderr."""
    process = subprocess.Popen(
        _command(config), env=_env(config), stderr=subprocess.PIPE, text=True
    )
    log = config.parent / config.stem / "log.csv"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        if log.is_file() and log.read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)  # torchrun passes it on to both ranks
    _, err = process.communicate(timeout=120)
    return err


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(folder / CHECKPOINT_NAME)["generator"]


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], exact: bool) -> None:
    assert a.keys() == b.keys()
    for name in a:
        if exact:
            assert torch.equal(a[name], b[name]), name
        else:
            torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted 1-rank and 2-rank run, and a 2-rank run stopped after 3 iterations."""
    folder = tmp_path_factory.mktemp("ddp")
    torch.set_num_threads(1)
    train(load_config(_config(folder, "one")), progress=False)
    _torchrun(_config(folder, "two"))
    # validating 4 photos at every iteration slows the killed run down (it does not change the
    # weights), so that SIGTERM lands well before its 6 iterations are done
    killed = _config(folder, "cut")
    killed.write_text(
        killed.read_text()
        .replace("validate_every: 100", "validate_every: 1")
        .replace(
            "  hr_size: 32",
            "  validation: {kind: skimage, names: [astronaut, coffee, chelsea, camera]}\n"
            "  hr_size: 32",
        )
    )
    err = _torchrun_killed(killed)
    assert err.count("stopped by SIGTERM") == 2, err[-3000:]  # both ranks, at the same row
    shutil.copytree(folder / "cut", folder / "cut-one")  # resumed with 1 rank below
    return folder


def test_two_ranks_match_one_rank(runs: Path) -> None:
    state = load_checkpoint(runs / "two" / CHECKPOINT_NAME)
    assert state["iteration"] == 6 and state["world_size"] == 2
    _assert_close(_weights(runs / "two"), _weights(runs / "one"), exact=False)
    assert not torch.equal(_weights(runs / "two")["conv_last.weight"], _initial_conv_last(runs))
    rows = (runs / "two" / "log.csv").read_text().splitlines()
    assert rows[0].split(",")[-1] == "world_size" and rows[-1].endswith(",2")


def _initial_conv_last(folder: Path) -> torch.Tensor:
    from training.networks import build_generator

    torch.manual_seed(5)
    return build_generator(load_config(folder / "one.yaml")).state_dict()["conv_last.weight"]


def test_killed_two_rank_run_resumes_to_the_uninterrupted_two_rank_run(runs: Path) -> None:
    assert 1 <= load_checkpoint(runs / "cut" / CHECKPOINT_NAME)["iteration"] < 6
    _torchrun(runs / "cut.yaml", "--resume")
    assert load_checkpoint(runs / "cut" / CHECKPOINT_NAME)["iteration"] == 6
    _assert_close(_weights(runs / "cut"), _weights(runs / "two"), exact=True)


def test_resume_with_another_world_size(runs: Path) -> None:
    (runs / "cut-one.yaml").write_text(CONFIG.format(out="cut-one"))
    assert load_checkpoint(runs / "cut-one" / CHECKPOINT_NAME)["world_size"] == 2
    train(load_config(runs / "cut-one.yaml"), resume=True, progress=False)
    _assert_close(_weights(runs / "cut-one"), _weights(runs / "one"), exact=False)
