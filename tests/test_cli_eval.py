from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from PIL import ImageEnhance
from typer.testing import CliRunner

from lookalike.cli import app
from tests.conftest import crop, flip, scene

runner = CliRunner()


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    """Three classes, each six edits of one synthetic scene: any model ranks them apart."""
    root = tmp_path / "labelled"
    for label, seed in (("alpha", 1), ("beta", 2), ("gamma", 3)):
        (root / label).mkdir(parents=True)
        base = scene(seed)
        edits = [base, crop(base, 0.9), crop(base, 0.8), flip(base),
                 ImageEnhance.Brightness(base).enhance(1.2), crop(flip(base), 0.85)]
        for i, image in enumerate(edits):
            image.save(root / label / f"{i}.jpg", quality=90)
    return root


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.slow
def test_eval_scores_configurations_from_cache(labelled: Path, tmp_path: Path) -> None:
    cache, plots = tmp_path / "cache", tmp_path / "plots"
    args = ["eval", labelled, "--model", "classic", "--model", "classic+classic:2",
            "--cluster", "3", "-k", "5", "--cache", cache, "--plots", plots, "--json"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert run["images"] == 18 and run["classes"] == 3 and "min(#relevant, k)" in run[
        "definitions"]
    first = run["results"][0]
    assert first["protocol"] == "leave-one-out over all images" and first["queries"] == 18
    assert first["summary"]["mAP@5"] == 1.0 and first["clustering"]["ACC"] == 1.0
    assert len(first["confusion"]) == 3 and set(first["per_class"]) == {"alpha", "beta",
                                                                        "gamma"}
    assert not first["cached"]
    assert (plots / "metrics.png").is_file() and (plots / "confusion-classic.png").is_file()
    again = json.loads(invoke(*args).stdout)
    assert again["results"][0]["cached"] and again["results"][1]["cached"]
    assert again["results"][0]["summary"] == first["summary"]

    text = invoke("eval", labelled, "--model", "classic", "--split", "0.5", "--seed", "1",
                  "--cache", cache, "--classes-table").stdout
    assert "held-out 0.5 (seed 1) vs the rest" in text and "gamma" in text


def test_eval_with_csv_queries_and_learned_transform(labelled: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "labels.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        for path in sorted(labelled.rglob("*.jpg")):
            writer.writerow([path.relative_to(tmp_path).as_posix(), path.parent.name])
    cache = tmp_path / "cache"
    result = invoke("eval", manifest, "--model", "classic", "--queries", labelled,
                    "--cache", cache, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["results"][0]["protocol"].startswith("18 separate")

    result = invoke("eval", labelled, "--model", "classic", "--learn", "lda", "--cache", cache)
    assert result.exit_code == 1 and "needs held-out queries" in result.output

    result = invoke("eval", labelled, "--model", "classic", "--learn", "lda", "--split", "0.5",
                    "--gallery", "held-out", "--cache", cache, "--json")
    assert result.exit_code == 0, result.output
    learned = json.loads(result.stdout)["results"][0]
    assert learned["transform"] == "lda" and learned["queries"] == 9

    out = tmp_path / "t"
    result = invoke("learn", labelled, "--method", "kissme", "--model", "classic", "--split",
                    "0.5", "--cache", cache, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    assert outcome["fitted_on"] == 9 and Path(outcome["saved"]).is_file()
    assert {row["gallery"] for row in outcome["held_out"]} == {"rest", "held-out",
                                                              "held-out classes"}
    result = invoke("eval", labelled, "--model", "classic", "--transform", out.with_suffix(
        ".npz"), "--cache", cache, "--json")
    assert json.loads(result.stdout)["results"][0]["transform"] == "kissme"


def test_eval_with_a_learned_transform_scores_the_projected_space(tmp_path: Path) -> None:
    """Scenes dominate the raw embedding, a small mark is the class: only the learned
    projection ranks by class, and eval's scores must show it."""
    from tests.test_collection_transform import marked

    root = tmp_path / "marks"
    for label, colour in (("red", (230, 20, 20)), ("blue", (20, 20, 230))):
        (root / label).mkdir(parents=True)
        for seed in range(8):
            marked(seed, colour).save(root / label / f"{seed}.png")
    args = ["eval", root, "--model", "classic", "--split", "0.5", "--seed", "0",
            "--cache", tmp_path / "cache", "--json", "-k", "1"]
    plain = json.loads(invoke(*args).stdout)["results"][0]
    learned = json.loads(invoke(*args, "--learn", "lda").stdout)["results"][0]
    assert plain["queries"] == learned["queries"] == 8
    assert learned["summary"]["top-1"] == 1.0 > plain["summary"]["top-1"]


def test_eval_and_learn_default_to_auto(labelled: Path, tmp_path: Path) -> None:
    """Like every other command, --model defaults to auto: the model a new collection
    gets here (the bundled mobilenetv2 offline), named as such in the results."""
    from lookalike.embed import resolve_auto

    cache = tmp_path / "cache"
    result = invoke("eval", labelled, "--cache", cache, "-k", "5", "--json")
    assert result.exit_code == 0, result.output
    (scored,) = json.loads(result.stdout)["results"]
    assert scored["label"] == resolve_auto() != "auto"
    assert scored["summary"]["top-1"] == 1.0  # six edits of one scene per class
    learned = invoke("learn", labelled, "--method", "lda", "--split", "0.5", "--cache", cache,
                     "--out", tmp_path / "lda", "--json")
    assert learned.exit_code == 0, learned.output
    outcome = json.loads(learned.stdout)
    assert {row["label"].split(" ")[0] for row in outcome["held_out"]} == {resolve_auto()}


def fingerprint(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_learn_split_without_out_never_overwrites(labelled: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The default target is a new folder lookalike owns; a user's file or folder by that
    name is refused, byte for byte untouched."""
    work = tmp_path / "work"
    (work / "labelled-rlda").mkdir(parents=True)
    (work / "labelled-rlda" / "notes.txt").write_text("mine")
    (work / "labelled-lda").write_text("also mine")
    monkeypatch.chdir(work)
    before = fingerprint(work)
    args = ["--model", "classic", "--split", "0.5", "--cache", tmp_path / "cache"]
    for method in ("rlda", "lda"):
        refused = invoke("learn", labelled, "--method", method, *args)
        assert refused.exit_code == 1 and f"labelled-{method}" in refused.output
    assert fingerprint(work) == before
    made = invoke("learn", labelled, "--method", "kissme", *args, "--classes",
                  "alpha,beta,gamma", "--json")
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["saved"] == str(work / "labelled-kissme" / "transform.npz")
    assert fingerprint(work).items() >= before.items()
    assert invoke("learn", labelled, "--method", "kissme", *args).exit_code == 0  # its own


def test_learn_db_warns_with_both_figures(labelled: Path, tmp_path: Path) -> None:
    assert invoke("index", labelled, "--model", "classic").exit_code == 0
    result = invoke("learn", labelled, "--db", labelled, "-k", "3")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "warning: the collection now searches in a learned space. mAP@3:" in text
    assert "held-out images of the labelled classes" in text
    assert "classes it was not fitted on" in text
    assert len(re.findall(r"\d\.\d{3} raw -> \d\.\d{3} learned", text)) == 2


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A near-duplicate set: three scenes with a crop and a flip each (three true pairs
    per group), a look-alike pair that is not a copy by the groups file (two distractors)
    and one lone distractor; all in one folder ``images`` beside ``groups.csv``."""
    root = tmp_path / "planted"
    images = root / "images"
    images.mkdir(parents=True)
    rows = []
    for group, seed in enumerate((1, 2, 3)):
        base = scene(seed)
        for name, image, edit in ((f"s{seed}.jpg", base, ""),
                                  (f"s{seed}-crop.jpg", crop(base, 0.85), "crop"),
                                  (f"s{seed}-flip.jpg", flip(base), "flip")):
            image.save(images / name, quality=90)
            rows.append((name, group, "original" if not edit else "copy", edit))
    scene(7).save(images / "d7.jpg", quality=90)
    ImageEnhance.Brightness(scene(7)).enhance(1.1).save(images / "d7-look.jpg", quality=90)
    scene(8).save(images / "d8.jpg", quality=90)
    rows += [(name, -1, "distractor", "") for name in ("d7.jpg", "d7-look.jpg", "d8.jpg")]
    with (root / "groups.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "group", "kind", "edit"])
        writer.writerows(rows)
    return root


@pytest.mark.slow
def test_eval_duplicates_scores_every_model(planted: Path, tmp_path: Path) -> None:
    # the set is one class ("images"): nothing to retrieve, so no retrieval table
    args = ["eval", planted, "--duplicates", planted / "groups.csv", "--model", "classic",
            "--model", "mobilenetv2", "--cache", tmp_path / "cache"]
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["results"] == [] and "1 class" in payload["retrieval_skipped"]
    rows = payload["duplicates"]
    assert [row["configuration"] for row in rows] == ["classic", "mobilenetv2"]
    for row in rows:
        overall = row["overall"]
        assert row["images"] == 12 and overall["true_pairs"] == 9
        assert 0.5 <= overall["precision"] <= 1.0 and 0.5 <= overall["recall"] <= 1.0
        assert 0.0 < overall["f1"] <= 1.0
        assert row["threshold"] == row["threshold"]  # a real cosine, not NaN
        assert set(row["by_edit"]) == {"original", "crop", "flip"}
        # distractors have no true pair: counted as wrongly joined pairs, not scored
        assert "distractor" not in row["by_edit"]
        # (the brightened look-alike of d7 is one; the lone d8 joins nothing)
        assert row["wrongly_joined"]["distractor"] >= 1
    # the two models are scored separately (not the first one twice): own thresholds
    assert rows[0]["model"] != rows[1]["model"]
    assert rows[0]["threshold"] != rows[1]["threshold"]

    text = invoke(*args).stdout
    assert "retrieval not scored" in text and "classes;" not in text
    assert "classic" in text and "mobilenetv2" in text
    assert "look-alike pairs wrongly joined" in text and "(distractors" in text
    for row in rows:
        assert f"{row['overall']['precision']:.3f}" in text


def test_eval_duplicates_keeps_retrieval_with_classes(labelled: Path, tmp_path: Path) -> None:
    groups = labelled / "groups.csv"
    with groups.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "group"])
        for label, group in (("alpha", 0), ("beta", 1), ("gamma", 2)):
            writer.writerows([(f"{label}/{i}.jpg", group) for i in range(6)])
    result = invoke("eval", labelled, "--duplicates", groups, "--model", "classic",
                    "--cache", tmp_path / "cache", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["classes"] == 3 and len(payload["results"]) == 1
    assert len(payload["duplicates"]) == 1 and payload["duplicates"][0]["overall"]["recall"] > 0
