"""Retrieval quality and metric learning on the shared labelled sets (../shared).

Reproduces the figures in BENCHMARKS.md, "Retrieval quality and metric learning":

    .venv/bin/python benchmarks/bench_eval.py [--quick] [--duplicates]

Embeddings are cached (``$LOOKALIKE_HOME/eval-cache``), so a second run only scores.
Every learned transform is fitted on a stratified 50 % of each class (seed 0) and scored
on the other 50 % only: against the training half as gallery ("vs rest") and leave-one-out
among the held-out half ("held-out LOO", images no learned stage has seen).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

from lookalike.embed.transform import chain_for
from lookalike.eval import EvalOptions, evaluate_duplicates, parse_configuration
from lookalike.eval.configurations import embed_configuration
from lookalike.eval.datasets import load_labelled
from lookalike.eval.scoring import evaluate_vectors

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
V2 = f"onnx:{SHARED}/models/mobilenetv2-int8/model.onnx"
V1 = f"onnx:{SHARED}/models/mobilenetv1-coral/model.onnx"
PREPROCESS = {V1: {"size": 224, "resize": 224, "mean": [0.50196] * 3, "std": [0.50196] * 3}}
ROOMS = ["bedroom", "kitchen", "livingroom", "office", "store"]


def row(dataset: str, result, extra: str = "") -> None:
    s = result.summary
    cells = " | ".join(f"{s[m]:.3f}" for m in s)
    print(f"| {dataset} | {result.label} | {result.protocol} | {cells} | {extra} |", flush=True)


def retrieval(name: str, quick: bool) -> None:
    labelled = load_labelled(SHARED / "data" / name)
    configs = [parse_configuration(text, PREPROCESS) for text in (V2, V1, f"{V2}+{V1}")]
    configs.append(parse_configuration(f"{V2}+{V1}", PREPROCESS, fusion="rrf"))
    vectors = {c.label: embed_configuration(labelled, c) for c in configs}
    for c in configs:
        row(name, evaluate_vectors(labelled, vectors[c.label], EvalOptions()))
    for gallery in ("rest", "held-out"):
        for c in configs:
            row(name, evaluate_vectors(labelled, vectors[c.label],
                                       EvalOptions(split=0.5, gallery=gallery)))
        methods = ["lda", "kissme"] + ([] if quick else ["linear"])
        for c in configs[:3:2]:  # mobilenetv2 alone and the concatenated ensemble
            for method in methods:
                started = time.perf_counter()
                options = EvalOptions(split=0.5, gallery=gallery,
                                      learn=functools.partial(chain_for, method))
                result = evaluate_vectors(labelled, vectors[c.label], options)
                row(name, result, f"fit+score {time.perf_counter() - started:.1f} s")


def rooms() -> None:
    """Seed 003: five room classes of scene15, 5 queries per class held out, top-5."""
    labelled = load_labelled(SHARED / "data" / "scene15").only_classes(ROOMS)
    for text in (V2, f"{V2}+{V1}"):
        c = parse_configuration(text, PREPROCESS)
        vectors = embed_configuration(labelled, c)
        for learn in (None, "lda"):
            options = EvalOptions(k=5, per_class=5, seed=0,
                                  learn=functools.partial(chain_for, learn) if learn else None)
            result = evaluate_vectors(labelled, vectors, options)
            per = ", ".join(f"{label} {v['top-5 acc']:.2f}/{v['top-1']:.2f}"
                            for label, v in result.per_class.items())
            row("scene15 rooms", result, f"top-5 acc / top-1 per class: {per}")


def clusters() -> None:
    """Seed 002: k = 2 on dogs vs cats (seed reported ACC 0.9675 with InceptionV3)."""
    labelled = load_labelled(SHARED / "data" / "dogs_vs_cats_2k")
    c = parse_configuration(V2, PREPROCESS)
    result = evaluate_vectors(labelled, embed_configuration(labelled, c),
                              EvalOptions(cluster=2))
    scores = ", ".join(f"{m} {result.clustering[m]:.4f}" for m in ("ACC", "NMI", "ARI",
                                                                   "purity"))
    row("dogs_vs_cats_2k", result, f"k-means k=2: {scores}")


def augmentation() -> None:
    labelled = load_labelled(SHARED / "data" / "flowers17")
    for crop, flip in ((False, False), (True, False), (False, True), (True, True)):
        c = parse_configuration(V2, PREPROCESS, border_crop=crop, flip=flip)
        vectors = embed_configuration(labelled, c)
        for options in (EvalOptions(), EvalOptions(split=0.5)):
            row("flowers17", evaluate_vectors(labelled, vectors, options),
                f"embedding {vectors.images_per_second:.1f} images/s")


def duplicates() -> None:
    c = parse_configuration(V2, PREPROCESS)
    found = evaluate_duplicates(SHARED / "data" / "neardup_flowers" / "groups.csv", c)
    print(f"neardup_flowers {found.model}: {found.overall} in {found.seconds:.0f} s")
    for edit, scores in found.by_edit.items():
        print(f"  {edit}: P {scores['precision']:.3f} R {scores['recall']:.3f} "
              f"F1 {scores['f1']:.3f} ({scores['true_pairs']} true pairs)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip the torch metric head")
    parser.add_argument("--duplicates", action="store_true", help="also neardup_flowers")
    args = parser.parse_args()
    if not SHARED.exists():
        sys.exit(f"{SHARED} not present")
    print("| dataset | configuration | protocol | mAP@10 | P@10 | R@10 | top-1 | top-10 acc "
          "| notes |")
    for name in ("flowers17", "scene15"):
        retrieval(name, args.quick)
    rooms()
    clusters()
    augmentation()
    if args.duplicates:
        duplicates()


if __name__ == "__main__":
    main()
