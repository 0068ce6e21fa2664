"""Verify: the image-reading side of duplicate finding.

* :func:`verify_pairs` decides whether two images are *the same photo* (edited or not) by
  local-feature geometry: SIFT keypoints, ratio-tested one-to-one matches and a RANSAC
  similarity transform (rotation, scale, translation; a mirrored match is tried too).
  Two photos of the same flower species share colours and shapes but not hundreds of
  keypoints that one rigid transform carries onto each other; an edited copy does.
* :func:`pixel_hashes` hashes decoded pixels, so the same picture saved as PNG and as BMP
  is an exact duplicate although its bytes differ.
* :func:`calibrate` sets a model's cosine thresholds from the collection's own images and
  synthetic edits of them: no labels needed.

The pure grouping logic lives in :mod:`lookalike.analyse.duplicates`.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import cv2
import faiss
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from .analyse.duplicates import agreement_from_samples, thresholds_from_samples
from .decode import DecodeError, FilePath, decode_file
from .embed import Backbone

# Working resolution for local features: the long side, in pixels. Edits that matter
# (crops, small rotations, re-encoding, captions) survive at this size (SIFT doubles the
# image internally for its finest octave), and SIFT sees 11x fewer pixels than at 640.
FEATURE_SIDE = 192
MAX_FEATURES = 200
# SIFT contrast threshold (OpenCV's default 0.04 leaves a blurred copy with ~25 keypoints;
# 0.01 gives it ~65, and the strongest MAX_FEATURES are kept either way).
CONTRAST = 0.01
RATIO = 0.8  # Lowe's ratio test on RootSIFT distances
RANSAC_TOLERANCE = 0.0125  # reprojection error allowed, as a fraction of the long side
MIN_INLIERS = 12  # neardup_flowers: look-alikes reach 6 at most, 99.5 % of copies 35+
# Feature-poor images (flat graphics, small scans) have too few keypoints to reach
# MIN_INLIERS; for them it is enough that most keypoints agree, above a floor that
# look-alikes do not reach. Photos have MAX_FEATURES keypoints, so this never applies.
MIN_INLIERS_SPARSE = 8
SPARSE_AGREEMENT = 0.6
MIN_SPREAD = 0.02  # inliers must span this fraction of each image's area (bounding box)
SCALE_RANGE = (0.2, 5.0)  # plausible resize between two copies
# First pass on the strongest keypoints only: copies show >= 10 inliers there, look-alikes
# rarely more than 4 (neardup_flowers), so a pair below SCREEN_INLIERS stops early.
SCREEN_FEATURES = 100
SCREEN_INLIERS = 5
# Dense agreement of a geometric match (dense_agreement), at the working resolution:
AGREE_WINDOW = 15  # correlation window, pixels (~8 % of the long side)
AGREE_SMOOTHING = 1.0  # Gaussian sigma against JPEG blocks and resampling noise
AGREE_FLAT_VARIANCE = 4.0  # grey-level variance below which a window is flat
AGREE_CORRELATION = 0.8  # a window agrees above this normalised cross-correlation

# A SIFT descriptor is a 4 x 4 grid of 8-bin orientation histograms. Mirroring the image
# left-right mirrors each keypoint's patch about its orientation axis: grid rows swap
# and orientation bin o becomes -o. So mirrored descriptors cost an index, not a second
# SIFT pass.
_MIRROR = np.arange(128).reshape(4, 4, 8)[::-1][..., (-np.arange(8)) % 8].ravel()

Progress = Callable[[int, int], None]
# Stored calibrations of an older version are measured again (4: agreement_threshold).
CALIBRATION_VERSION = 4
TWO_EDITS = "two edits"  # calibration: two edited copies of one photo, against each other


# -- local features ---------------------------------------------------------------------


@dataclass(frozen=True)
class Features:
    """SIFT keypoints of one image at the working resolution, strongest first.

    ``descriptors`` are RootSIFT (L1-normalised, square-rooted: unit L2 rows), so a dot
    product is a similarity and ``2 - 2 * dot`` a squared distance.
    """

    points: np.ndarray  # float32 [m, 2] (x, y)
    descriptors: np.ndarray  # float16 [m, 128]: half the memory in the cache, exact enough
    width: int
    height: int
    # uint8 [height, width]: the grey pixels the keypoints were found in, for the dense
    # check of a geometric match (None: not kept; the match then has no agreement)
    grey: np.ndarray | None = None

    def strongest(self, count: int) -> Features:
        """The ``count`` strongest keypoints (all of them when there are no more)."""
        if len(self.points) <= count:
            return self
        return Features(self.points[:count], self.descriptors[:count], self.width,
                        self.height, self.grey)

    def mirrored(self) -> Features:
        points = self.points.copy()
        points[:, 0] = self.width - 1 - points[:, 0]
        grey = None if self.grey is None else np.ascontiguousarray(self.grey[:, ::-1])
        return Features(points, np.ascontiguousarray(self.descriptors[:, _MIRROR]),
                        self.width, self.height, grey)


def extract_features(
    image: Image.Image | np.ndarray, side: int = FEATURE_SIDE, max_features: int = MAX_FEATURES
) -> Features:
    """SIFT features of an RGB image (PIL or array) scaled so its long side is ``side``."""
    pixels = np.asarray(image.convert("L") if isinstance(image, Image.Image) else image)
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2GRAY)
    height, width = pixels.shape
    scale = side / max(width, height)
    if scale != 1.0:
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        pixels = cv2.resize(pixels, (width, height), interpolation=interpolation)
    sift = cv2.SIFT.create(nfeatures=max_features, contrastThreshold=CONTRAST)
    keypoints, raw = sift.detectAndCompute(pixels, None)
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if raw is None or not keypoints:
        return Features(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float16),
                        width, height, pixels)
    order = np.argsort([-keypoint.response for keypoint in keypoints], kind="stable")
    raw = raw[order].astype(np.float32)
    root = np.sqrt(raw / np.maximum(raw.sum(axis=1, keepdims=True), 1e-7))
    points = np.array([keypoints[k].pt for k in order], dtype=np.float32).reshape(-1, 2)
    return Features(points, np.ascontiguousarray(root, dtype=np.float16), width, height,
                    pixels)


def load_features(
    path: FilePath, side: int = FEATURE_SIDE, max_features: int = MAX_FEATURES
) -> Features:
    """Decode a file small (JPEG DCT downscale) and extract its features."""
    return extract_features(decode_file(path, min_side=side).image, side, max_features)


# -- geometric verification ---------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """The geometric evidence that two images are one photo.

    ``inliers``: one-to-one keypoint matches that one similarity transform explains.
    ``same``: whether that is enough (``inliers >= MIN_INLIERS``, or most keypoints of a
    feature-poor pair, with a plausible scale and matches spread over both images).
    ``flipped``: the match was mirror-image.
    ``agreement``: for a geometric match, the fraction of the textured overlap where the
    two images, registered by the fitted transform, correlate locally (see
    :func:`dense_agreement`): ~1 for an edited copy, less where pose or moment differ in
    another shot of the same scene; NaN when not measured. ``coverage``: the overlap as a
    fraction of the smaller image.
    """

    inliers: int
    matches: int
    flipped: bool
    scale: float
    same: bool
    agreement: float = math.nan
    coverage: float = 0.0

    @property
    def weight(self) -> float:
        """Link strength for grouping: 0 when not the same photo, else in (0.5, 1),
        growing with the evidence (20 inliers: 0.75, 60: 0.9)."""
        if not self.same:
            return 0.0
        return 0.5 + 0.5 * self.inliers / (self.inliers + 20.0)


NO_MATCH = Verdict(0, 0, False, 0.0, False)
_NO_FIT = np.zeros((0, 3))


def _one_to_one(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ratio-tested matches ``a[qa] ~ b[tb]``, each ``b`` point used at most once."""
    # faiss finds the two nearest descriptors single-threaded (see verify_pairs); numpy's
    # BLAS would spawn threads of its own for every small product and fight ours.
    similarity, nearest = faiss.knn(np.asarray(a, dtype=np.float32),
                                    np.asarray(b, dtype=np.float32), 2,
                                    metric=faiss.METRIC_INNER_PRODUCT)
    distance = np.sqrt(np.maximum(2.0 - 2.0 * similarity, 0.0))
    good = np.flatnonzero((distance[:, 0] < RATIO * distance[:, 1]) & (nearest[:, 0] >= 0))
    good = good[np.argsort(-similarity[good, 0], kind="stable")]
    _, keep = np.unique(nearest[good, 0], return_index=True)
    good = good[keep]
    return good, nearest[good, 0]


def _geometry(a: Features, b: Features, flipped: bool) -> tuple[Verdict, np.ndarray]:
    """The verdict and the fitted 2 x 3 transform from ``a`` to ``b`` (empty: none)."""
    if len(a.descriptors) < 2 or len(b.descriptors) < 2:
        return NO_MATCH, _NO_FIT
    qa, tb = _one_to_one(a.descriptors, b.descriptors)
    if len(qa) < 4:
        return Verdict(0, len(qa), flipped, 0.0, False), _NO_FIT
    source, target = a.points[qa], b.points[tb]
    tolerance = RANSAC_TOLERANCE * max(b.width, b.height)
    matrix, mask = cv2.estimateAffinePartial2D(
        source, target, method=cv2.RANSAC, ransacReprojThreshold=tolerance, maxIters=2000,
        confidence=0.995,
    )
    if matrix is None or mask is None:
        return Verdict(0, len(qa), flipped, 0.0, False), _NO_FIT
    inside = mask.ravel().astype(bool)
    inliers = int(inside.sum())
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    plausible = SCALE_RANGE[0] <= scale <= SCALE_RANGE[1]
    fewest = min(len(a.descriptors), len(b.descriptors))
    enough = inliers >= MIN_INLIERS or (
        inliers >= MIN_INLIERS_SPARSE and inliers >= SPARSE_AGREEMENT * fewest)
    same = (
        plausible
        and enough
        and _spread(source[inside], a) >= MIN_SPREAD
        and _spread(target[inside], b) >= MIN_SPREAD
    )
    return Verdict(inliers if plausible else 0, len(qa), flipped, scale, bool(same)), matrix


def _spread(points: np.ndarray, features: Features) -> float:
    """Bounding-box area of ``points`` as a fraction of the image: a caption or a logo
    alone covers little, the photo itself a lot."""
    if len(points) == 0:
        return 0.0
    extent = points.max(axis=0) - points.min(axis=0)
    return float(extent[0] * extent[1]) / max(features.width * features.height, 1)


def verify_features(a: Features, b: Features) -> Verdict:
    """Whether ``a`` and ``b`` show the same photo; a mirrored match is tried second.

    A geometric match is then checked densely (:func:`dense_agreement`) when both
    features kept their pixels: the evidence that tells an edited copy from another shot.
    """
    direct, fit = _screened(a, b, flipped=False)
    best, source = direct, a
    if not (direct.same and direct.inliers >= 3 * MIN_INLIERS):
        # weaker evidence may be a symmetric mirror image
        mirror = a.mirrored()
        mirrored, mirror_fit = _screened(mirror, b, flipped=True)
        if mirrored.inliers > direct.inliers:
            best, source, fit = mirrored, mirror, mirror_fit
    if not best.same or source.grey is None or b.grey is None:
        return best
    agreement, coverage = dense_agreement(source.grey, b.grey, fit)
    return replace(best, agreement=agreement, coverage=coverage)


def _screened(a: Features, b: Features, flipped: bool) -> tuple[Verdict, np.ndarray]:
    """Match the strongest keypoints first; only a pair that shows some geometric
    agreement there is matched in full. Look-alikes, the bulk of the candidates, stop
    after the cheap first step (~1/4 of the work)."""
    few_a, few_b = a.strongest(SCREEN_FEATURES), b.strongest(SCREEN_FEATURES)
    quick = _geometry(few_a, few_b, flipped)
    if quick[0].inliers < SCREEN_INLIERS or (few_a is a and few_b is b):
        return quick
    return _geometry(a, b, flipped)


def dense_agreement(
    source: np.ndarray, target: np.ndarray, matrix: np.ndarray
) -> tuple[float, float]:
    """``(agreement, coverage)`` of two grey images registered by ``matrix`` (2 x 3,
    ``source`` coordinates to ``target``'s).

    The larger-scale image is warped onto the other's grid (so it is only ever shrunk),
    both are smoothed a little (re-encoding and resampling noise), and a normalised
    cross-correlation is taken in a small window around every pixel of the overlap.
    Correlation ignores local brightness and contrast, so recolouring, greying and
    re-encoding keep it near 1; an overlay lowers it only where it lies. ``agreement``:
    the fraction of the overlap's textured pixels (neither image flat there) whose
    correlation is above :data:`AGREE_CORRELATION`. A window flat in either image
    carries no evidence: brightening clips highlights flat, blurring flattens fine
    texture, and neither makes a copy another photo. ``coverage``: overlap pixels over
    the smaller image's pixels.
    """
    if matrix.shape != (2, 3):
        return math.nan, 0.0
    forward: np.ndarray = np.asarray(matrix, dtype=np.float64)
    if abs(np.linalg.det(forward[:, :2])) > 1.0:  # source is the smaller: warp target
        source, target, forward = target, source, cv2.invertAffineTransform(forward)
    height, width = target.shape
    warped = cv2.warpAffine(source, forward, (width, height), flags=cv2.INTER_LINEAR)
    footprint = cv2.warpAffine(np.full(source.shape, 255, np.uint8), forward,
                               (width, height), flags=cv2.INTER_NEAREST)
    coverage = float(np.count_nonzero(footprint)) / max(min(source.size, target.size), 1)
    window = (AGREE_WINDOW, AGREE_WINDOW)
    overlap = cv2.erode(footprint, np.ones(window, np.uint8)) > 0
    if not overlap.any():
        return math.nan, coverage
    x = cv2.GaussianBlur(warped.astype(np.float32), (0, 0), AGREE_SMOOTHING)
    y = cv2.GaussianBlur(target.astype(np.float32), (0, 0), AGREE_SMOOTHING)
    mean_x, mean_y = cv2.blur(x, window), cv2.blur(y, window)
    var_x = np.maximum(cv2.blur(x * x, window) - mean_x * mean_x, 0.0)
    var_y = np.maximum(cv2.blur(y * y, window) - mean_y * mean_y, 0.0)
    covariance = cv2.blur(x * y, window) - mean_x * mean_y
    textured = overlap & (np.minimum(var_x, var_y) > AGREE_FLAT_VARIANCE)
    if not textured.any():
        return math.nan, coverage
    correlation = covariance / np.sqrt(np.maximum(var_x, AGREE_FLAT_VARIANCE)
                                       * np.maximum(var_y, AGREE_FLAT_VARIANCE))
    return float(np.mean(correlation[textured] > AGREE_CORRELATION)), coverage


class FeatureCache:
    """Features by position, loaded on demand in worker threads, with a bounded LRU.

    ``capacity``: images kept (200 keypoints ~ 53 kB and the 192-pixel grey image the
    dense check reads, up to 37 kB, so 10,000 ~ 0.9 GB at most).
    Unreadable images get empty features: nothing verifies against them.
    """

    def __init__(
        self, paths: Sequence[FilePath], side: int = FEATURE_SIDE,
        max_features: int = MAX_FEATURES, capacity: int = 10_000,
    ) -> None:
        self.paths = paths
        self.side = side
        self.max_features = max_features
        self.capacity = capacity
        self._items: OrderedDict[int, Features] = OrderedDict()

    def get(self, position: int) -> Features:
        found = self._items.get(position)
        if found is not None:
            self._items.move_to_end(position)
            return found
        return self.put(position, self.load(position))

    def load(self, position: int) -> Features:
        try:
            return load_features(self.paths[position], self.side, self.max_features)
        except DecodeError:
            return Features(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float16), 1, 1)

    def put(self, position: int, features: Features) -> Features:
        self._items[position] = features
        self._items.move_to_end(position)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return features

    def __contains__(self, position: int) -> bool:
        return position in self._items


def verify_pairs(
    paths: Sequence[FilePath],
    i: np.ndarray,
    j: np.ndarray,
    *,
    cache: FeatureCache | None = None,
    workers: int | None = None,
    chunk: int = 512,
    progress: Progress | None = None,
) -> list[Verdict]:
    """Verify the pairs ``(paths[i[t]], paths[j[t]])``; one :class:`Verdict` each.

    A pipeline over chunks of pairs: worker threads decode and extract the features the
    next chunk needs (OpenCV and Pillow release the GIL) while the calling thread matches
    the current one. Matching stays on one thread on purpose: it is many small numpy and
    OpenCV calls, and a second matching thread only fights the first for the GIL.
    """
    cache = cache or FeatureCache(paths)
    workers = workers or max(1, os.cpu_count() or 1)
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    starts = list(range(0, len(i), chunk))
    verdicts: list[Verdict] = []

    def submit(pool: ThreadPoolExecutor, start: int) -> dict[int, Future[Features]]:
        wanted = np.unique(np.concatenate([i[start:start + chunk], j[start:start + chunk]]))
        return {int(p): pool.submit(cache.load, int(p)) for p in wanted if p not in cache}

    with _one_thread_per_call(), ThreadPoolExecutor(
        max_workers=workers, thread_name_prefix="lookalike-verify") as pool:
        pending = submit(pool, starts[0]) if starts else {}
        for number, start in enumerate(starts):
            for position, future in pending.items():
                cache.put(position, future.result())
            if number + 1 < len(starts):
                pending = submit(pool, starts[number + 1])
            for a, b in zip(i[start:start + chunk], j[start:start + chunk]):
                verdicts.append(verify_features(cache.get(int(a)), cache.get(int(b))))
            if progress:
                progress(len(verdicts), len(i))
    return verdicts


@contextmanager
def _one_thread_per_call() -> Iterator[None]:
    """OpenCV and faiss single-threaded inside (our pool gives one thread per core),
    restored afterwards. Nested thread pools oversubscribe the cores and their spin-waits
    make a small faiss search ten times slower (0.5 ms -> 4.9 ms for 200 x 200 on 2
    cores). OpenCV's setting is process-wide; OpenMP's is per thread, which is enough:
    the matching (faiss) runs on the calling thread, the pool only extracts features."""
    opencv, openmp = cv2.getNumThreads(), faiss.omp_get_max_threads()
    cv2.setNumThreads(1)
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(opencv)
        faiss.omp_set_num_threads(openmp)


# -- exact duplicates -----------------------------------------------------------------------


def pixel_hash(path: FilePath) -> str:
    """A hash of the decoded, upright RGB pixels (and their size): equal for one picture
    stored in different lossless containers (PNG, BMP, TIFF, lossless WebP)."""
    image = decode_file(path).image
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{image.width}x{image.height}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def pixel_hashes(
    paths: Sequence[FilePath], *, workers: int | None = None
) -> list[str | None]:
    """:func:`pixel_hash` of each path in parallel; ``None`` for a file that fails."""

    def safe(path: FilePath) -> str | None:
        try:
            return pixel_hash(path)
        except DecodeError:
            return None

    workers = workers or max(1, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lookalike-hash") as pool:
        return list(pool.map(safe, paths))


# -- self-calibration -------------------------------------------------------------------------


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _crop(image: Image.Image, fraction: float, rng: np.random.Generator) -> Image.Image:
    width, height = image.size
    w, h = max(1, round(width * fraction)), max(1, round(height * fraction))
    left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    return image.crop((left, top, left + w, top + h))


def _caption(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    image = image.copy()
    draw = ImageDraw.Draw(image)
    width, height = image.size
    y = int(rng.integers(0, max(1, height - 12)))
    draw.text((width // 20, y), "(c) lookalike calibration sample", fill=(255, 255, 255))
    return image


SYNTHETIC_EDITS: dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]] = {
    "jpeg": lambda image, rng: _jpeg(image, 30),
    "crop": lambda image, rng: _crop(image, 0.8, rng),
    "crop+jpeg": lambda image, rng: _jpeg(_crop(image, 0.7, rng), 50),
    "flip": lambda image, rng: ImageOps.mirror(image),
    "grey": lambda image, rng: ImageOps.grayscale(image).convert("RGB"),
    "rotate": lambda image, rng: image.rotate(float(rng.choice([-1, 1]) * rng.uniform(4, 10)),
                                              resample=Image.Resampling.BILINEAR),
    "resize": lambda image, rng: image.resize(
        (max(1, image.width // 3), max(1, image.height // 3)), Image.Resampling.LANCZOS),
    "bright": lambda image, rng: ImageEnhance.Contrast(
        ImageEnhance.Brightness(image).enhance(1.3)).enhance(0.8),
    "blur": lambda image, rng: image.filter(ImageFilter.GaussianBlur(max(image.size) / 150)),
    "border": lambda image, rng: ImageOps.expand(image, border=max(image.size) // 12,
                                                 fill=(0, 0, 0)),
    "text": _caption,
}


def calibrate(
    backbone: Backbone,
    paths: Sequence[FilePath],
    vectors: np.ndarray,
    nearest_other: np.ndarray,
    *,
    sample: int = 132,
    edits_per_image: int = 4,
    recall: float = 0.95,
    agreement_recall: float = 0.99,
    seed: int = 0,
    workers: int | None = None,
) -> dict[str, Any]:
    """Cosine thresholds for ``backbone`` on this collection, without labels.

    ``vectors``: the collection's stored embeddings (row per path); ``nearest_other``:
    each row's cosine to a near look-alike (e.g. one column of the k-NN graph). Up to
    ``sample`` images get ``edits_per_image`` synthetic edits each, dealt round-robin from
    :data:`SYNTHETIC_EDITS` so every kind is measured about equally often. The cosine of an
    image to its edit is what a duplicate scores, ``nearest_other`` what a look-alike
    scores; :func:`~lookalike.analyse.duplicates.thresholds_from_samples` turns
    the two into thresholds. Returns the small dict to store with the model, e.g.
    ``{"candidate_threshold": 0.66, "near_threshold": 0.87, "calibrated_on": 132, ...}``.

    Each edit is also verified against its original by local features, and pairs of
    edits against each other (two copies in a collection are often two edits apart); the
    dense agreement of the matches (see :func:`dense_agreement`) sets
    ``agreement_threshold``, below which a geometric match is another shot of the same
    scene: the agreement that ``agreement_recall`` of every kind of edit reaches (see
    :func:`~lookalike.analyse.duplicates.agreement_from_samples`). It is the last word
    on a pair, so it keeps more of the edits than the candidate gate, which
    verification still follows.
    """
    n = len(paths)
    if n == 0:
        raise ValueError("nothing to calibrate on: the collection is empty")
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(n, size=min(sample, n), replace=False))
    names = list(SYNTHETIC_EDITS)
    per_image = min(edits_per_image, len(names))
    plan = [
        (int(p), [names[(x * per_image + e) % len(names)] for e in range(per_image)],
         int(rng.integers(1 << 31)))
        for x, p in enumerate(chosen)
    ]
    side = max(backbone.decode_size, 256)

    def make(
        item: tuple[int, list[str], int],
    ) -> tuple[list[tuple[int, str, np.ndarray, float]], list[float]]:
        position, edits, item_seed = item
        faiss.omp_set_num_threads(1)  # per thread: this pool already has one per core
        try:
            image = decode_file(paths[position], min_side=side).image
        except DecodeError:
            return [], []
        image.thumbnail((2 * side, 2 * side))
        local = np.random.default_rng(item_seed)
        original = extract_features(image)
        made, copies = [], []
        for name in edits:
            copy = SYNTHETIC_EDITS[name](image, local)
            copies.append(extract_features(copy))
            verdict = verify_features(original, copies[-1])
            agreement = verdict.agreement if verdict.same else math.nan
            made.append((position, name, backbone.preprocess(copy), agreement))
        # two copies of one photo are copies of each other, two edits apart
        between = [verify_features(a, b) for a, b in zip(copies[::2], copies[1::2])]
        return made, [v.agreement if v.same else math.nan for v in between]

    workers = workers or max(1, os.cpu_count() or 1)
    with _one_thread_per_call(), ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="lookalike-calib") as pool:
        batches = list(pool.map(make, plan))
    made = [entry for batch, _ in batches for entry in batch]
    between = [agreement for _, pairs in batches for agreement in pairs]
    if not made:
        raise ValueError("no sample image could be decoded for calibration")
    owners = np.array([position for position, _, _, _ in made], dtype=np.int64)
    kinds = [name for _, name, _, _ in made]
    agreements = np.array([agreement for _, _, _, agreement in made], dtype=np.float64)
    inputs = np.stack([array for _, _, array, _ in made])
    step = max(1, backbone.batch_size)
    edited = np.concatenate([backbone.embed(inputs[s:s + step])
                             for s in range(0, len(inputs), step)])
    originals = np.asarray(vectors[owners], dtype=np.float32)
    edit_similarity = np.einsum("ij,ij->i", originals, edited)
    other = np.asarray(nearest_other, dtype=np.float64)
    other = other[np.isfinite(other)]
    result: dict[str, Any] = thresholds_from_samples(
        edit_similarity, other, edit_kinds=kinds, recall=recall)
    result.update(agreement_from_samples(
        np.concatenate([agreements, between]),
        edit_kinds=kinds + [TWO_EDITS] * len(between), recall=agreement_recall))
    result.update({
        "calibrated_on": int(len(np.unique(owners))),
        "edits": int(len(edit_similarity)),
        "recall": recall,
        "edit_similarity_median": round(float(np.median(edit_similarity)), 4),
        "nearest_other_median": round(float(np.median(other)), 4) if len(other) else None,
        "version": CALIBRATION_VERSION,
    })
    return result
