#!/usr/bin/env python3
"""Writes iris_like.csv: 300 rows, 4 numeric features, 3 classes (0, 1, 2).

Deterministic: the same seed gives the same file byte for byte, so the
committed CSV can always be remade with `python3 make_iris_like.py`.
The classes are Gaussian clouds around the means of Fisher's iris species,
so a softmax model separates them well but not perfectly.
"""
import random

SEED = 2024
ROWS_PER_CLASS = 100
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
MEANS = [
    (5.0, 3.4, 1.5, 0.25),  # class 0, like setosa
    (5.9, 2.8, 4.3, 1.30),  # class 1, like versicolor
    (6.6, 3.0, 5.5, 2.00),  # class 2, like virginica
]
STDDEV = (0.35, 0.32, 0.45, 0.22)


def main():
    rng = random.Random(SEED)
    rows = []
    for label, mean in enumerate(MEANS):
        for _ in range(ROWS_PER_CLASS):
            x = [max(0.1, rng.gauss(m, s)) for m, s in zip(mean, STDDEV)]
            rows.append(x + [label])
    rng.shuffle(rows)
    with open("iris_like.csv", "w", newline="\n") as f:
        f.write(",".join(FEATURES + ["species"]) + "\n")
        for r in rows:
            f.write(",".join("%.2f" % v for v in r[:-1]) + ",%d\n" % r[-1])


if __name__ == "__main__":
    main()
