"""The hotel data of vidl, verbatim from the book, with its own train/test split (no shuffling).

The book prints prices for every hotel but only the first five labels of its two
classification targets; the rest are reconstructed by the documented rules below and
flagged reconstructed_labels=True wherever the dataset goes.
"""

from __future__ import annotations

import numpy as np

from datasets.base import Dataset

# vidl ch.1: (distance mi, price $)
CH1_TRAIN = [(0.5, 146), (1.1, 149), (1.6, 140), (2.4, 134), (3.5, 127), (4.6, 110), (6.2, 112), (9.5, 81)]
CH1_TEST = [(0.3, 156), (0.7, 168), (4.9, 116), (8.5, 99)]

# vidl ch.2-4: (distance mi, rating, price $)
CH2_TRAIN = [
    (0.2, 3.5, 157), (0.2, 4.8, 155), (0.5, 3.7, 146), (0.7, 4.3, 168), (0.8, 2.7, 147), (1.5, 3.6, 136),
    (1.6, 2.6, 140), (2.4, 4.7, 134), (3.5, 4.2, 116), (3.5, 3.5, 127), (4.6, 2.8, 106), (4.6, 4.2, 110),
    (4.9, 3.8, 116), (6.2, 3.6, 112), (6.5, 2.4, 92), (8.5, 3.1, 99), (9.5, 2.1, 81), (9.7, 3.7, 92),
    (11.3, 2.9, 75), (14.6, 3.8, 108), (17.5, 4.6, 166), (18.7, 3.8, 188), (19.5, 4.4, 211), (19.8, 3.6, 207),
]  # fmt: skip
CH2_TEST = [
    (0.3, 4.6, 156), (0.5, 4.2, 162), (1.1, 3.5, 149), (1.2, 4.7, 145), (2.7, 2.7, 123), (3.8, 4.1, 118),
    (7.3, 4.6, 82), (19.4, 4.8, 209),
]  # fmt: skip

# What the book prints of its classification targets (first five training rows).
HOT_PRINTED = [1, 1, 1, 1, 0]  # yes, yes, yes, yes, no
HOT_TRAIN_POSITIVES = 11  # its training confusion matrix: TN 11, FP 2, FN 1, TP 10
CATEGORY_NAMES = ["gold", "silver", "bronze"]
CATEGORY_PRINTED = [1, 0, 1, 0, 2]  # silver, gold, silver, gold, bronze

# The reconstruction rules (pure functions of distance and rating).
HOT_MAX_DISTANCE = 7.0
HOT_MIN_RATING = 3.5
HOT_RULE = (
    f"hot (1) iff rating >= {HOT_MIN_RATING} and distance < {HOT_MAX_DISTANCE} mi: a well-rated hotel close to the "
    "centre is in high demand. It reproduces the book's printed first five (yes, yes, yes, yes, no: the fifth is "
    "close but rated 2.7) and gives exactly 11 hot of the 24 training rows, as the book's confusion matrix implies; "
    "no row is forced. Test split: 5 hot of 8."
)
CATEGORY_DISTANCE_WEIGHT = 0.05  # one rating point per 20 miles from the centre
GOLD_MIN_SCORE = 4.0
SILVER_MIN_SCORE = 3.0
CATEGORY_RULE = (
    f"score = rating - {CATEGORY_DISTANCE_WEIGHT} x distance (a rating point lost per 20 mi from the centre), "
    f"rounded to 6 decimals; gold if score >= {GOLD_MIN_SCORE}, silver if {SILVER_MIN_SCORE} <= score < "
    f"{GOLD_MIN_SCORE}, bronze below. It reproduces the book's printed first five (scores 3.49, 4.79, 3.675, "
    "4.265, 2.66 -> silver, gold, silver, gold, bronze); no row is forced. Training split: 4 gold, 11 silver, "
    "9 bronze; test split: 4 gold, 3 silver, 1 bronze."
)


def hot_label(distance: np.ndarray, rating: np.ndarray) -> np.ndarray:
    return ((rating >= HOT_MIN_RATING) & (distance < HOT_MAX_DISTANCE)).astype(np.int64)


def category_label(distance: np.ndarray, rating: np.ndarray) -> np.ndarray:
    """0 gold, 1 silver, 2 bronze (rounding keeps a score on a threshold off float noise)."""
    score = np.round(rating - CATEGORY_DISTANCE_WEIGHT * distance, 6)
    return np.where(score >= GOLD_MIN_SCORE, 0, np.where(score >= SILVER_MIN_SCORE, 1, 2)).astype(np.int64)


def _split_meta(n_train: int, n_test: int) -> dict:
    return {
        "n_train": n_train,
        "n_test": n_test,
        "shuffled": False,
        "choice": f"the book's split: its first {n_train} rows train, its last {n_test} test, in printed order",
    }


FIXED = "fixed table, no randomness: seed is None and a seed passed in is ignored"


def _common() -> dict:
    return {"seed": None, "preprocessing": []}


def hotels_linear(seed: int | None = None) -> Dataset:
    """vidl ch.1: distance -> price, 8 training and 4 test hotels."""
    tr, te = np.array(CH1_TRAIN, dtype=np.float64), np.array(CH1_TEST, dtype=np.float64)
    return Dataset(
        "hotels-linear",
        tr[:, :1],
        tr[:, 1],
        te[:, :1],
        te[:, 1],
        meta={
            "source": "vidl ch.1",
            "task": "regression",
            "class_names": [],
            "feature_names": ["distance_mi"],
            "target_name": "price_usd",
            "params": {"generator": "verbatim table (vidl ch.1)"},
            "split": _split_meta(len(tr), len(te)),
            "reconstructed_labels": False,
            "notes": [
                "ordinary least squares on the training rows gives train MSE 16.37 and test MSE 144.47 "
                "(the book: 16.4, 144.5)",
                "the book trains at lr 0.08, full batch: that converges only on standardized features",
                FIXED,
            ],
            **_common(),
        },
    )


def _ch2() -> tuple[np.ndarray, np.ndarray]:
    return np.array(CH2_TRAIN, dtype=np.float64), np.array(CH2_TEST, dtype=np.float64)


def hotels(seed: int | None = None) -> Dataset:
    """vidl ch.2: (distance, rating) -> price, 24 training and 8 test hotels."""
    tr, te = _ch2()
    return Dataset(
        "hotels",
        tr[:, :2],
        tr[:, 2],
        te[:, :2],
        te[:, 2],
        meta={
            "source": "vidl ch.2",
            "task": "regression",
            "class_names": [],
            "feature_names": ["distance_mi", "rating"],
            "target_name": "price_usd",
            "params": {"generator": "verbatim table (vidl ch.2)"},
            "split": _split_meta(len(tr), len(te)),
            "reconstructed_labels": False,
            "notes": ["the book trains at lr 0.08, full batch: that converges only on standardized features", FIXED],
            **_common(),
        },
    )


def hotels_hot(seed: int | None = None) -> Dataset:
    """vidl ch.3: the same 32 hotels, binary target "hot" (high demand); labels reconstructed."""
    tr, te = _ch2()
    return Dataset(
        "hotels-hot",
        tr[:, :2],
        hot_label(tr[:, 0], tr[:, 1]),
        te[:, :2],
        hot_label(te[:, 0], te[:, 1]),
        meta={
            "source": "vidl ch.3",
            "task": "binary",
            "class_names": ["no", "yes"],
            "feature_names": ["distance_mi", "rating"],
            "params": {
                "generator": "verbatim features (vidl ch.2 table), labels by rule",
                "rule": HOT_RULE,
                "min_rating": HOT_MIN_RATING,
                "max_distance_mi": HOT_MAX_DISTANCE,
            },
            "split": _split_meta(len(tr), len(te)),
            "reconstructed_labels": True,
            "printed_labels": {"train_first_five": HOT_PRINTED, "train_positives": HOT_TRAIN_POSITIVES},
            "notes": [
                "RECONSTRUCTED LABELS: the book prints only the first five; " + HOT_RULE,
                FIXED,
            ],
            **_common(),
        },
    )


def hotels_category(seed: int | None = None) -> Dataset:
    """vidl ch.4: the same 32 hotels, 3 classes gold/silver/bronze; labels reconstructed.

    Labels are class indices (gold 0, silver 1, bronze 2); one-hot encoding for the
    categorical cross-entropy happens later, in datasets/preprocess.py.
    """
    tr, te = _ch2()
    return Dataset(
        "hotels-category",
        tr[:, :2],
        category_label(tr[:, 0], tr[:, 1]),
        te[:, :2],
        category_label(te[:, 0], te[:, 1]),
        meta={
            "source": "vidl ch.4",
            "task": "multiclass",
            "class_names": CATEGORY_NAMES,
            "feature_names": ["distance_mi", "rating"],
            "params": {
                "generator": "verbatim features (vidl ch.2 table), labels by rule",
                "rule": CATEGORY_RULE,
                "distance_weight": CATEGORY_DISTANCE_WEIGHT,
                "gold_min_score": GOLD_MIN_SCORE,
                "silver_min_score": SILVER_MIN_SCORE,
            },
            "split": _split_meta(len(tr), len(te)),
            "reconstructed_labels": True,
            "printed_labels": {"train_first_five": [CATEGORY_NAMES[i] for i in CATEGORY_PRINTED]},
            "notes": [
                "RECONSTRUCTED LABELS: the book prints only the first five; " + CATEGORY_RULE,
                FIXED,
            ],
            **_common(),
        },
    )
