"""Recognising an SRVGGNetCompact in an ncnn graph and naming its weights canonically."""

from __future__ import annotations

from esrgan_plugin.formats.ncnn_match import (
    Match,
    Mismatch,
    StateDict,
    Step,
    compare,
    conv_signature,
    conv_tensors,
    convolutions,
)


def match_ncnn(steps: list[Step]) -> Match:
    """SRVGGNetCompact: (conv, PReLU) x (n + 1), conv, pixel-shuffle r, + nearest-upsampled input.

    An optional final bicubic resize (how some packages make x2/x3 from the x4 network) is
    kept as the model's ``output_scale``.
    """
    convs = convolutions(steps)
    shuffles = [s.layer for s in steps if s.layer is not None and s.layer.kind == "PixelShuffle"]
    if len(convs) < 2 or len(shuffles) != 1:
        raise Mismatch(
            f"{len(convs)} convolutions and {len(shuffles)} pixel-shuffles "
            "(SRVGGNetCompact has at least 2 and exactly 1)"
        )
    upscale = shuffles[0].int_param(0, 1)
    first, last = convs[0].weights["weight"], convs[-1].weights["weight"]
    cin, nf = int(first.shape[1]), int(first.shape[0])
    cout, rem = divmod(int(last.shape[0]), upscale * upscale)
    if rem:
        raise Mismatch(
            f"the last convolution's {int(last.shape[0])} outputs are not c x {upscale}^2"
        )
    num_convs = len(convs) - 2
    expected = [conv_signature(cin, nf), f"PReLU {nf}"]
    for _ in range(num_convs):
        expected += [conv_signature(nf, nf), f"PReLU {nf}"]
    expected += [
        conv_signature(nf, cout * upscale * upscale),
        f"PixelShuffle {upscale}",
        f"Interp nearest x{upscale}",
        "BinaryOp add",
    ]
    metadata: dict[str, str] = {}
    tail = steps[len(expected) :]
    if len(tail) == 1 and tail[0].signature.startswith("Interp bicubic x"):
        factor = float(tail[0].signature.removeprefix("Interp bicubic x"))
        output_scale = upscale * factor
        if abs(output_scale - round(output_scale)) > 1e-6 or round(output_scale) < 1:
            raise Mismatch(f"the final resize x{factor:g} does not give an integer scale")
        expected.append(tail[0].signature)
        metadata["output_scale"] = str(round(output_scale))
    compare(steps, expected)
    state: StateDict = {}
    prelus = [s.layer for s in steps if s.layer is not None and s.layer.kind == "PReLU"]
    for i, conv in enumerate(convs):
        state.update(conv_tensors(f"body.{2 * i}", conv))
    for i, prelu in enumerate(prelus):
        state[f"body.{2 * i + 1}.weight"] = prelu.weights["weight"]
    return Match("SRVGGNetCompact", state, metadata)
