"""RaGAN losses (Eq. 1-2) against hand-computed values and BasicSR's procedure, and the pre-activation perceptual loss."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from training.errors import TrainingError
from training.losses import (
    VGG19_IMAGENET_FILE,
    VGG19_LAYERS,
    PerceptualLoss,
    build_vgg19_features,
    ragan_discriminator_loss,
    ragan_discriminator_terms,
    ragan_generator_loss,
)

SIZE = 32  # VGG19 on CPU is slow: keep images tiny


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


# ---- RaGAN ---------------------------------------------------------------------------------

REAL = [1.0, 2.0]
FAKE = [0.5, -1.0]


def _hand_rel() -> tuple[list[float], list[float]]:
    """C(x_r) - mean C(x_f) and C(x_f) - mean C(x_r), by hand."""
    return [r - _mean(FAKE) for r in REAL], [f - _mean(REAL) for f in FAKE]


def test_discriminator_loss_is_half_of_eq1_by_hand() -> None:
    real_rel, fake_rel = _hand_rel()
    eq1 = _mean([-math.log(_sigmoid(v)) for v in real_rel]) + _mean(
        [-math.log(1.0 - _sigmoid(v)) for v in fake_rel]
    )
    got = ragan_discriminator_loss(torch.tensor(REAL).view(2, 1), torch.tensor(FAKE).view(2, 1))
    assert got.ndim == 0
    assert got.item() == pytest.approx(eq1 / 2, rel=1e-6)


def test_generator_loss_is_the_mean_of_eq2s_terms_by_hand() -> None:
    real_rel, fake_rel = _hand_rel()
    eq2 = _mean([-math.log(1.0 - _sigmoid(v)) for v in real_rel]) + _mean(
        [-math.log(_sigmoid(v)) for v in fake_rel]
    )
    got = ragan_generator_loss(torch.tensor(REAL), torch.tensor(FAKE))
    assert got.item() == pytest.approx(eq2 / 2, rel=1e-6)  # the authors average, not sum
    swapped = ragan_discriminator_loss(torch.tensor(FAKE), torch.tensor(REAL))
    assert got.item() == pytest.approx(swapped.item(), rel=1e-6)


# ---- RaGAN against BasicSR's ESRGANModel.optimize_parameters --------------------------------
# basicsr 1.4.2 installs but does not import with torchvision >= 0.17 (it imports the removed
# torchvision.transforms.functional_tensor), so its procedure is re-derived here from its
# published formulas, independently of training.losses: GANLoss('vanilla') is BCE-with-logits
# against all-ones/all-zeros labels, scaled by loss_weight for G only; G's adversarial loss is
# (l_g_real + l_g_fake) / 2; D's real and fake halves are separate forward and backward passes,
# each relative to the *detached* mean of the other, D re-evaluated on the detached fake.

GAN_WEIGHT = 5e-3


def _basicsr_gan_loss(pred: Tensor, target_is_real: bool, is_disc: bool) -> Tensor:
    """BasicSR's vanilla GANLoss: BCEWithLogitsLoss(pred, 1 or 0), times loss_weight for G only."""
    target = torch.ones_like(pred) if target_is_real else torch.zeros_like(pred)
    loss = nn.BCEWithLogitsLoss()(pred, target)
    return loss if is_disc else loss * GAN_WEIGHT


def _fixed_batch() -> tuple[nn.Module, Tensor, Tensor]:
    """A tiny VGG-style D with BN, 3 HR crops and 3 'generator outputs' (a leaf with gradient)."""
    from training.discriminator import VGGStyleDiscriminator

    torch.manual_seed(0)
    disc = VGGStyleDiscriminator(3, 4, 128).train()
    gt = torch.rand(3, 3, 128, 128)
    output = (gt + 0.2 * torch.randn_like(gt)).clamp(0, 1).requires_grad_(True)
    return disc, gt, output


def _d_grads(disc: nn.Module) -> Tensor:
    return torch.cat([p.grad.flatten() for p in disc.parameters() if p.grad is not None])


def test_generator_loss_matches_basicsr_value_and_gradient() -> None:
    disc, gt, output = _fixed_batch()
    disc.requires_grad_(False)
    fake_g_pred = disc(output)
    real_d_pred = disc(gt).detach()
    l_g_real = _basicsr_gan_loss(real_d_pred - torch.mean(fake_g_pred), False, is_disc=False)
    l_g_fake = _basicsr_gan_loss(fake_g_pred - torch.mean(real_d_pred), True, is_disc=False)
    reference = (l_g_real + l_g_fake) / 2
    (reference_grad,) = torch.autograd.grad(reference, output)

    ours = GAN_WEIGHT * ragan_generator_loss(disc(gt).detach(), disc(output))
    (ours_grad,) = torch.autograd.grad(ours, output)
    assert ours.item() == pytest.approx(reference.item(), rel=1e-6)
    torch.testing.assert_close(ours_grad, reference_grad, rtol=1e-5, atol=1e-12)
    assert reference_grad.abs().sum() > 0


def test_discriminator_loss_matches_basicsr_values_and_gradients() -> None:
    disc, gt, output = _fixed_batch()
    state = {k: v.clone() for k, v in disc.state_dict().items()}
    disc.zero_grad()
    fake_d_pred = disc(output).detach()
    real_d_pred = disc(gt)
    l_d_real = _basicsr_gan_loss(real_d_pred - torch.mean(fake_d_pred), True, is_disc=True) * 0.5
    l_d_real.backward()
    fake_d_pred = disc(output.detach())
    l_d_fake = (
        _basicsr_gan_loss(fake_d_pred - torch.mean(real_d_pred.detach()), False, is_disc=True) * 0.5
    )
    l_d_fake.backward()
    reference_grads = _d_grads(disc)

    disc.load_state_dict(state)  # same BN running statistics; train mode uses batch statistics
    disc.zero_grad()
    real_term, fake_term = ragan_discriminator_terms(disc(gt), disc(output.detach()))
    (real_term + fake_term).backward()
    assert real_term.item() == pytest.approx(l_d_real.item(), rel=1e-6)
    assert fake_term.item() == pytest.approx(l_d_fake.item(), rel=1e-6)
    torch.testing.assert_close(_d_grads(disc), reference_grads, rtol=1e-5, atol=1e-10)

    # the detached means matter: letting gradient through them gives a different update
    disc.load_state_dict(state)
    disc.zero_grad()
    real, fake = disc(gt), disc(output.detach())
    undetached = 0.5 * F.binary_cross_entropy_with_logits(
        real - fake.mean(), torch.ones_like(real)
    ) + 0.5 * F.binary_cross_entropy_with_logits(fake - real.mean(), torch.zeros_like(fake))
    undetached.backward()
    assert not torch.allclose(_d_grads(disc), reference_grads, rtol=1e-3, atol=0)


def test_generator_loss_uses_the_real_term() -> None:
    real = torch.tensor(REAL, requires_grad=True)
    fake = torch.tensor(FAKE, requires_grad=True)
    ragan_generator_loss(real, fake).backward()
    assert real.grad is not None and real.grad.abs().sum() > 0
    assert fake.grad is not None and fake.grad.abs().sum() > 0


@pytest.mark.parametrize("loss", [ragan_discriminator_loss, ragan_generator_loss])
def test_huge_logits_stay_finite(loss: Callable[[Tensor, Tensor], Tensor]) -> None:
    real = torch.tensor([[1e4], [-1e4]], requires_grad=True)
    fake = torch.tensor([[-1e4], [1e4]], requires_grad=True)
    value = loss(real, fake)
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(real.grad).all() and torch.isfinite(fake.grad).all()


def test_mismatched_logit_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        ragan_discriminator_loss(torch.zeros(2, 1), torch.zeros(2, 3))


# ---- Perceptual loss -------------------------------------------------------------------------


def test_layer_indices_match_torchvision_vgg19() -> None:
    assert VGG19_LAYERS["conv5_4"] == 34 and VGG19_LAYERS["relu5_4"] == 35
    assert VGG19_LAYERS["conv1_1"] == 0 and VGG19_LAYERS["conv2_1"] == 5
    loss = PerceptualLoss(weights="random")
    assert len(loss.extractor) == 35
    assert isinstance(loss.extractor[-1], nn.Conv2d)  # truncated before conv5_4's ReLU


def test_conv5_4_features_are_taken_before_the_relu() -> None:
    loss = PerceptualLoss(weights="random")
    features = loss.extract_features(torch.rand(1, 3, SIZE, SIZE))["conv5_4"]
    assert (features < 0).any(), "conv5_4 features have no negative values: post-ReLU?"
    after = PerceptualLoss({"relu5_4": 1.0}, weights="random")
    assert (after.extract_features(torch.rand(1, 3, SIZE, SIZE))["relu5_4"] >= 0).all()


def test_loss_equals_torchvision_pre_activation_reference() -> None:
    """Fails if the loss used post-ReLU features or the wrong layer of torchvision's VGG19."""
    vgg = pytest.importorskip("torchvision.models.vgg")
    loss = PerceptualLoss(weights="random")
    reference = vgg.make_layers(vgg.cfgs["E"])[:35]
    reference.load_state_dict(loss.extractor.state_dict())
    sr, hr = torch.rand(2, 3, SIZE, SIZE), torch.rand(2, 3, SIZE, SIZE)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = torch.abs(reference((sr - mean) / std) - reference((hr - mean) / std)).mean()
        post_relu = torch.abs(
            torch.relu(reference((sr - mean) / std)) - torch.relu(reference((hr - mean) / std))
        ).mean()
        got = loss(sr, hr)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    assert not torch.isclose(got, post_relu, rtol=1e-3)


def test_shallow_features_survive_deeper_layers() -> None:
    """An in-place ReLU after conv1_1 would clip the captured conv1_1 features."""
    loss = PerceptualLoss({"conv1_1": 0.5, "conv2_1": 1.0}, weights="random")
    assert len(loss.extractor) == VGG19_LAYERS["conv2_1"] + 1
    features = loss.extract_features(torch.rand(1, 3, SIZE, SIZE))
    assert (features["conv1_1"] < 0).any()


def test_random_weights_are_deterministic_and_leave_global_rng_alone() -> None:
    state = torch.get_rng_state()
    first = build_vgg19_features(6, seed=3).state_dict()
    assert torch.equal(state, torch.get_rng_state())
    second = build_vgg19_features(6, seed=3).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert PerceptualLoss({"conv1_2": 1.0}, weights="random").weights_source == "random"


def test_extractor_is_frozen_and_gradient_reaches_sr() -> None:
    loss = PerceptualLoss({"conv2_1": 1.0}, criterion="l2", weights="random").train()
    assert not loss.extractor.training
    assert not any(p.requires_grad for p in loss.parameters())
    sr = torch.rand(1, 3, SIZE, SIZE, requires_grad=True)
    value = loss(sr, torch.rand(1, 3, SIZE, SIZE))
    value.backward()
    assert value > 0 and sr.grad is not None and sr.grad.abs().sum() > 0


def _fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the torch hub cache at ``tmp_path`` and make any download attempt fail loudly."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    return tmp_path / "checkpoints" / VGG19_IMAGENET_FILE


def test_imagenet_without_cache_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_hub(tmp_path, monkeypatch)
    with pytest.raises(TrainingError) as info:
        PerceptualLoss({"conv1_1": 1.0})
    message = str(info.value)
    assert "\n" not in message
    assert "IMAGENET1K_V1" in message and "weights=" in message and str(tmp_path) in message


def test_imagenet_from_cache_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = _fake_hub(tmp_path, monkeypatch)
    cache.parent.mkdir(parents=True)
    source = build_vgg19_features(6, seed=7)  # torchvision layout: features.N.*, plus a classifier
    state = {f"features.{k}": v for k, v in source.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)
    torch.save(state, cache)
    loss = PerceptualLoss({"conv2_1": 1.0})
    assert loss.weights_source == "imagenet"
    assert torch.equal(loss.extractor[2].weight, source[2].weight)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_weights_file(tmp_path: Path, suffix: str) -> None:
    source = build_vgg19_features(3, seed=11)
    path = tmp_path / f"vgg{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(source.state_dict(), str(path))
    else:
        torch.save(source.state_dict(), path)
    loss = PerceptualLoss({"conv1_2": 1.0}, weights=path)
    assert loss.weights_source == str(path)
    assert torch.equal(loss.extractor[2].weight, source[2].weight)


def test_bad_weights_files_are_training_errors(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="not found"):
        PerceptualLoss({"conv1_1": 1.0}, weights=tmp_path / "missing.pth")
    incomplete = tmp_path / "incomplete.pth"
    torch.save({"0.weight": torch.zeros(64, 3, 3, 3)}, incomplete)
    with pytest.raises(TrainingError, match="missing 0.bias"):
        PerceptualLoss({"conv1_1": 1.0}, weights=incomplete)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(TrainingError, match="cannot read"):
        PerceptualLoss({"conv1_1": 1.0}, weights=garbage)


def test_bad_arguments_are_value_errors() -> None:
    with pytest.raises(ValueError, match="unknown VGG19 layer 'conv6_1'"):
        PerceptualLoss({"conv6_1": 1.0}, weights="random")
    with pytest.raises(ValueError, match="criterion"):
        PerceptualLoss(criterion="huber", weights="random")
    with pytest.raises(ValueError, match="custom feature_extractor"):
        PerceptualLoss({"conv1_1": 1.0}, feature_extractor=nn.Identity())


def test_custom_feature_extractor_is_called_directly() -> None:
    loss = PerceptualLoss(feature_extractor=nn.Identity())
    sr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(loss(sr, hr), torch.abs(sr - hr).mean())
    assert loss.weights_source == "custom:Identity"
    l2 = PerceptualLoss(criterion="l2", feature_extractor=nn.Identity())
    torch.testing.assert_close(l2(sr, hr), ((sr - hr) ** 2).mean())
    with pytest.raises(ValueError, match="shapes differ"):
        loss(sr, hr[:1])
