from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from conftest import write_png
from edge.cli import cli
from trainer.convert import convert_dataset


def count(root: Path) -> dict[str, dict[str, int]]:
    return {split.name: {c.name: len(list(c.glob("*.png"))) for c in sorted(split.iterdir())}
            for split in sorted(root.iterdir()) if split.is_dir()}


def flat_tree(root: Path, per_class: int = 10) -> Path:
    for index, name in enumerate(("anger", "happy", "sad")):
        for k in range(per_class):
            write_png(root / name / f"{name}_{k}.png", index * 3 + k % 3)
    return root


def test_flat_tree_split_with_seeded_ratio(tmp_path: Path):
    source = flat_tree(tmp_path / "flat")
    result = CliRunner().invoke(cli, ["data", str(source), "--out", str(tmp_path / "out"), "--ratios", "0.6,0.2,0.2",
                                      "--seed", "3"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "next: ers train --data-dir" in result.output
    counts = count(tmp_path / "out")
    assert counts == {split: {c: n for c in ("anger", "happy", "sad")}
                      for split, n in (("test", 2), ("train", 6), ("val", 2))}
    convert_dataset(source, tmp_path / "again", ratios=(0.6, 0.2, 0.2), seed=3)
    for split in ("train", "val", "test"):
        first = sorted(p.name for p in (tmp_path / "out" / split).rglob("*.png"))
        second = sorted(p.name for p in (tmp_path / "again" / split).rglob("*.png"))
        assert first == second


def test_ferplus_to_folders(tmp_path: Path, ferplus_root: Path):
    result = convert_dataset(ferplus_root, tmp_path / "out")
    assert result.source_format == "ferplus"
    assert sorted(p.name for p in (tmp_path / "out" / "train").rglob("*.png")) == ["a.png", "b.png", "c.png",
                                                                                    "g.png", "h.png"]
    assert (tmp_path / "out" / "train" / "happy" / "b.png").is_file()
    assert not (tmp_path / "out" / "val" / "anger").exists()  # c.png is a duplicate of train


def test_fer2013_csv_to_folders(tmp_path: Path, fer2013_csv: Path):
    result = convert_dataset(fer2013_csv, tmp_path / "out")
    assert {split: sum(c.values()) for split, c in result.counts.items()} == {"train": 7, "val": 7, "test": 7}
    assert (tmp_path / "out" / "test" / "neutral").is_dir()


def test_split_tree_copies_and_validates(tmp_path: Path, class_folders: Path):
    result = convert_dataset(class_folders, tmp_path / "out")
    assert result.source_format == "folders" and sum(result.counts["train"].values()) == 16


def test_refuses_non_empty_out(tmp_path: Path):
    source = flat_tree(tmp_path / "flat", per_class=3)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("keep")
    result = CliRunner().invoke(cli, ["data", str(source), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "--overwrite" in result.output


def test_bad_file_in_source(tmp_path: Path):
    source = flat_tree(tmp_path / "flat", per_class=3)
    (source / "sad" / "broken.png").write_text("not a png")
    result = CliRunner().invoke(cli, ["data", str(source), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "broken.png" in result.output
    skipped = convert_dataset(source, tmp_path / "out2", skip_bad=True)
    assert skipped.skipped == 1


def test_bad_ratios(tmp_path: Path):
    result = CliRunner().invoke(cli, ["data", str(flat_tree(tmp_path / "f", 3)), "--out", str(tmp_path / "o"),
                                      "--ratios", "0.5,0.5,0.5"])
    assert result.exit_code == 1 and "ratios" in result.output
    for ratios in ("nan,0,1", "0.5,nan,0.5"):
        result = CliRunner().invoke(cli, ["data", str(tmp_path / "f"), "--out", str(tmp_path / "o"), "--ratios", ratios])
        assert result.exit_code == 1 and "ratios" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["data", str(tmp_path / "f"), "--out", str(tmp_path / "o"), "--seed", "-1"])
    assert result.exit_code == 1 and "seed" in result.output and "Traceback" not in result.output


def test_out_over_the_source_is_refused_and_the_source_survives(tmp_path: Path, class_folders: Path):
    source = flat_tree(tmp_path / "flat", per_class=3)
    for out in (source, source / "converted"):
        result = CliRunner().invoke(cli, ["data", str(source), "--out", str(out), "--overwrite"])
        assert result.exit_code == 1 and "overlaps the source" in result.output
    copied = tmp_path / "split"
    convert_dataset(class_folders, copied)
    result = CliRunner().invoke(cli, ["data", str(copied), "--out", str(copied), "--overwrite"])
    assert result.exit_code == 1 and "overlaps the source" in result.output
    assert len(list(copied.rglob("*.png"))) == len(list(class_folders.rglob("*.png")))
    assert len(list(source.rglob("*.png"))) == 9


def test_an_out_that_cannot_be_a_folder_is_one_line(tmp_path: Path):
    source = flat_tree(tmp_path / "flat", per_class=3)
    (tmp_path / "a_file").write_text("x")
    blocked = tmp_path / "a_file" / "o"
    for out, says in ((tmp_path / "a_file", "is a file, not a folder"),
                      (blocked, f"cannot write --out {blocked}: {tmp_path / 'a_file'} is a file, not a folder")):
        result = CliRunner().invoke(cli, ["data", str(source), "--out", str(out)])
        assert result.exit_code == 1 and says in result.output and "Traceback" not in result.output


def test_the_next_command_names_the_classes_and_an_empty_split_is_pointed_out(tmp_path: Path):
    source = flat_tree(tmp_path / "flat", per_class=3)
    result = CliRunner().invoke(cli, ["data", str(source), "--out", str(tmp_path / "o"), "--ratios", "1,0,0"])
    assert result.exit_code == 0, result.output
    assert "note: val, test got no images" in result.output
    assert f"next: ers train --data-dir {tmp_path / 'o'} --set data.class_names=anger,happy,sad" in result.output


def test_a_converted_set_may_live_inside_a_fer_plus_root(tmp_path: Path, ferplus_root: Path):
    result = convert_dataset(ferplus_root, ferplus_root / "converted")  # no FER2013* folder is touched
    assert result.source_format == "ferplus" and (ferplus_root / "converted" / "train").is_dir()


def test_the_next_command_quotes_class_names_with_spaces(tmp_path: Path):
    from trainer.convert import ConvertResult

    result = ConvertResult(tmp_path / "my set", class_names=("very happy", "sad"))
    assert result.train_command() == f"ers train --data-dir '{tmp_path / 'my set'}' --set 'data.class_names=very happy,sad'"
