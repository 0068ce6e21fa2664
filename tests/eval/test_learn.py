from __future__ import annotations

from pathlib import Path

from lookalike.eval import parse_configuration
from lookalike.eval.learn import HeldOutScores, LearnResult, learn_transform
from tests.conftest import crop, flip, scene


def labelled(root: Path) -> Path:
    """Three classes, each four edits of one synthetic scene."""
    for label, seed in (("alpha", 1), ("beta", 2), ("gamma", 3)):
        (root / label).mkdir(parents=True)
        base = scene(seed)
        for i, image in enumerate([base, crop(base, 0.9), flip(base), crop(flip(base), 0.8)]):
            image.save(root / label / f"{i}.jpg", quality=90)
    return root


def test_learn_returns_a_typed_result_raw_then_learned_per_gallery(tmp_path: Path) -> None:
    dataset = labelled(tmp_path / "set")
    result = learn_transform(dataset, parse_configuration("classic"), "lda", split=0.5,
                             k=3, cache=tmp_path / "cache", out=tmp_path / "lda")
    assert isinstance(result, LearnResult)
    assert result.transform == "lda" and result.fitted_on == 6 and result.output_dim == 2
    assert result.protocol == "split 0.5, seed 0" and Path(result.saved).is_file()
    assert all(isinstance(row, HeldOutScores) for row in result.held_out)
    assert [(row.label, row.gallery) for row in result.held_out] == [
        ("classic", "rest"), ("classic + lda", "rest"),
        ("classic", "held-out"), ("classic + lda", "held-out")]
    assert set(result.held_out[0].summary) == {"mAP@3", "P@3", "R@3", "top-1", "top-3 acc"}


def test_learn_without_a_split_fits_on_everything_and_scores_nothing(tmp_path: Path) -> None:
    dataset = labelled(tmp_path / "set")
    result = learn_transform(dataset, parse_configuration("classic"), "lda",
                             cache=tmp_path / "cache")
    assert result.fitted_on == 12 and result.held_out == [] and result.protocol is None
    assert result.saved == ""
