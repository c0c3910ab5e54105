"""``python -m dni_lite.bench``: the five training methods, measured, as a table and a JSON file.

Beside them runs the DNI pipeline's control (its synthesizers zeroed), whose test accuracy
says whether the synthetic gradients taught the lower stages anything, and the machine's
ceiling: K copies of one-worker backprop trained at once, which no K-worker scheme can
outrun here (``--no-ceiling`` skips it).

    python -m dni_lite.bench --preset heavy --out data/bench_heavy.json
    python -m dni_lite.bench --preset default --out data/bench_default.json

``--preset default`` is notebook 07's benchmark model (depth 5 x width 512,
batch 128, Adam lr 3e-4 for the layers and 3e-2 for the synthesizers);
``--preset heavy`` is depth 7 x width 1024, batch 256, 240 steps, where each stage
has more work to pay for its messages. Both presets' synthesizers are linear maps of
128 fixed random directions of the activation. ``--synth-projection 0`` measures full
linear synthesizers, ``--synth mlp`` MLP ones, ``--target-delay 2`` a step of slack for
the targets, and ``--lr`` and ``--synth-lr`` other learning rates. The methods and how
they are measured are in ``dni_lite.parallel.methods``; the results file records its
command, settings, versions, commit, machine and wall time. The older width sweep
(backprop against the DNI pipeline only) is ``python -m dni_lite.parallel.bench``.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

from .parallel import methods
from .synthesizer import KINDS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dni_lite.bench",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(methods.PRESETS), default="default")
    parser.add_argument("--repeats", type=int, help="interleaved repeats (default: the preset's)")
    parser.add_argument("--steps", type=int, help="training steps per run (default: the preset's)")
    parser.add_argument("--workers", type=int, help="pipeline workers (default: the preset's)")
    parser.add_argument("--seed", type=int, help="seed of weights and batches (default 0)")
    parser.add_argument("--synth", choices=KINDS,
                        help="the DNI pipeline's synthesizers (default: the preset's)")
    parser.add_argument("--synth-projection", type=int,
                        help="the synthesizers see each activation through this many fixed random "
                             "directions; 0: whole (default: the preset's)")
    parser.add_argument("--target-delay", type=int,
                        help="steps between a DNI prediction and the target it regresses on "
                             "(default: the preset's)")
    parser.add_argument("--lr", type=float, help="Adam's learning rate for every method's layers "
                                                  "(default: the preset's)")
    parser.add_argument("--synth-lr", type=float,
                        help="Adam's learning rate for the DNI pipeline's synthesizers "
                             "(default: the preset's)")
    parser.add_argument("--no-cuda", action="store_true",
                        help="ignore a GPU if present (default: also measure backprop and DNI on it)")
    parser.add_argument("--no-ceiling", action="store_true",
                        help="skip the ceiling (K copies of one-worker backprop at once)")
    parser.add_argument("--out", default=None, help="write the results JSON here")
    args = parser.parse_args(argv)
    changes = {k: v for k, v in (("repeats", args.repeats), ("steps", args.steps),
                                 ("workers", args.workers), ("seed", args.seed),
                                 ("synth_kind", args.synth),
                                 ("synth_projection", args.synth_projection),
                                 ("target_delay", args.target_delay), ("lr", args.lr),
                                 ("synth_lr", args.synth_lr)) if v is not None}
    if args.no_cuda:
        changes["cuda"] = False
    if args.no_ceiling:
        changes["ceiling"] = False
    try:
        settings = dataclasses.replace(methods.PRESETS[args.preset], **changes)
    except ValueError as exc:
        parser.error(str(exc))
    result = methods.run(settings, args.out, argv=list(sys.argv[1:] if argv is None else argv))
    print(methods.format_table(result))
    if args.out:
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
