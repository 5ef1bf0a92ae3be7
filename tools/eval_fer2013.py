"""Accuracy of an exported model against the ORIGINAL FER2013 7-class labels.

FER+ relabelled FER2013 with 10 crowd votes per image; published FER2013
numbers (for example the `fer` package's mini-Xception, about 65.5% on the
FER2013 test set) use the original single labels. This scores an exported
variant, through the runtime's own classifier, on those labels: contempt has
no FER2013 counterpart, so the prediction is the best of the other seven
classes. Images marked ambiguous and, by default, Valid images duplicated in
Train are left out.

    python tools/eval_fer2013.py --model-dir edge/models/emotion --variant int8 \\
        --ferplus-root ../shared/data/ferplus --split FER2013Valid
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import click
import cv2
import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from edge.classifier import EmotionClassifier
from edge.errors import ErsError

# FER2013's names for the classes the project calls otherwise.
FER2013_TO_PROJECT = {"angry": "anger"}


def read_rows(root: Path, split: str, dedup: bool) -> list[tuple[str, str]]:
    """(image file, project class name) for the unambiguous images of ``split``."""
    excluded: set[str] = set()
    labels = root / "fer2013_original_labels.csv"
    if not labels.is_file():
        raise click.ClickException(f"{root} has no fer2013_original_labels.csv: pass the FER+ root of ../shared")
    duplicates = root / "valid_duplicates_of_train.csv"
    if dedup and duplicates.is_file():
        with duplicates.open(newline="") as handle:
            excluded = {row["image"] for row in csv.DictReader(handle) if row["folder"] == split}
    with labels.open(newline="") as handle:
        return [
            (row["image"], FER2013_TO_PROJECT.get(row["fer2013_label"], row["fer2013_label"]))
            for row in csv.DictReader(handle)
            if row["folder"] == split and row["ambiguous"] == "False" and row["image"] not in excluded
        ]


def read_gray(path: Path) -> np.ndarray:
    """A grayscale image, or a one-line error naming the file."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise click.ClickException(f"cannot read image {path} listed in fer2013_original_labels.csv")
    return image


@click.command()
@click.option("--model-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--variant", default=None, help="Manifest variant (default: the manifest's).")
@click.option("--ferplus-root", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--split", default="FER2013Valid", show_default=True)
@click.option("--dedup/--no-dedup", default=True, show_default=True,
              help="Leave out Valid images that are duplicates of Train images.")
def main(model_dir: Path, variant: str | None, ferplus_root: Path, split: str, dedup: bool) -> None:
    """An exported model's accuracy on the original FER2013 7-class labels of FER+ images."""
    rows = read_rows(ferplus_root, split, dedup)
    try:
        classifier = EmotionClassifier.from_dir(model_dir, variant)
    except ErsError as error:
        raise click.ClickException(str(error)) from None
    with classifier:
        labels = list(classifier.labels)
        seven = [name for name in labels if name != "contempt"]
        columns = [labels.index(name) for name in seven]
        # classify() resizes and converts colour exactly as the live runtime does.
        crops = [cv2.cvtColor(read_gray(ferplus_root / split / image), cv2.COLOR_GRAY2RGB) for image, _ in rows]
        probs = np.concatenate([classifier.classify(crops[i : i + 256]) for i in range(0, len(crops), 256)])
    predicted = [seven[i] for i in probs[:, columns].argmax(axis=1)]
    truth = [name for _, name in rows]
    click.echo(json.dumps({
        "split": split, "images": len(rows), "deduplicated": dedup, "variant": classifier.variant.file,
        "accuracy_7class": round(accuracy_score(truth, predicted), 4),
        "weighted_f1_7class": round(f1_score(truth, predicted, average="weighted"), 4),
    }, indent=2))


if __name__ == "__main__":
    main()
