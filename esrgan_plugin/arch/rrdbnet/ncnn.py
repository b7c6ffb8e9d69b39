"""Recognising an RRDBNet in an ncnn graph and naming its weights canonically."""

from __future__ import annotations

from collections.abc import Iterator

from esrgan_plugin.formats.ncnn_match import (
    LEAKY,
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
    """conv_first -> nb RRDBs -> conv_body + skip -> (nearest x2, conv) per up-step -> HR convs."""
    convs = convolutions(steps)
    if len(convs) < 4:
        raise Mismatch(f"only {len(convs)} convolutions (RRDBNet has at least 4)")
    cin, nf = int(convs[0].weights["weight"].shape[1]), int(convs[0].weights["weight"].shape[0])
    cout = int(convs[-1].weights["weight"].shape[0])
    num_up = sum(1 for s in steps if s.signature == "Interp nearest x2")
    num_blocks, rem = divmod(len(convs) - 4 - num_up, 15)
    if rem or num_blocks < 0:
        raise Mismatch(
            f"{len(convs)} convolutions with {num_up} up-steps is not 4 + up-steps + 15 per RRDB"
        )
    gc = int(convs[1].weights["weight"].shape[0]) if num_blocks else 32
    expected = list(_rrdbnet_signatures(cin, cout, nf, gc, num_blocks, num_up))
    compare(steps, expected)
    names = _rrdbnet_conv_names(num_blocks, num_up)
    state: StateDict = {}
    for name, layer in zip(names, convs, strict=True):
        state.update(conv_tensors(name, layer))
    return Match("RRDBNet", state, {})


def _rrdbnet_signatures(
    cin: int, cout: int, nf: int, gc: int, num_blocks: int, num_up: int
) -> Iterator[str]:
    yield conv_signature(cin, nf)
    for _ in range(num_blocks):
        for _rdb in range(3):
            for j in range(4):
                yield conv_signature(nf + j * gc, gc, LEAKY)
                yield "Concat"
            yield conv_signature(nf + 4 * gc, nf)
            yield "Eltwise sum 0.2,1"
        yield "Eltwise sum 0.2,1"
    yield conv_signature(nf, nf)
    yield "BinaryOp add"
    for _ in range(num_up):
        yield "Interp nearest x2"
        yield conv_signature(nf, nf, LEAKY)
    yield conv_signature(nf, nf, LEAKY)
    yield conv_signature(nf, cout)


def _rrdbnet_conv_names(num_blocks: int, num_up: int) -> list[str]:
    names = ["conv_first"]
    for i in range(num_blocks):
        names += [f"body.{i}.rdb{k}.conv{j}" for k in (1, 2, 3) for j in range(1, 6)]
    names.append("conv_body")
    names += [f"conv_up{u}" for u in range(1, num_up + 1)]
    return [*names, "conv_hr", "conv_last"]
