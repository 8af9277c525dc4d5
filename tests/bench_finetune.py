"""Fine-tuning stability table: `python tests/bench_finetune.py WORKDIR [--rows B:LR ...]`.

Re-runs issue 12's table with the same kind of data: the three sample photos,
jittered, as "real", and simulated screen recaptures of them (moire, display gamma, blur,
colour cast; tests/training_synth.py) as "spoof", at 128x128 so the shipped
`best_model.pth` can start from them. 144 images per class give 230 training and 58
validation crops; a second set made with another seed (60 per class) is the held-out test
split, never trained on. `--strength 0.3` makes the recapture artefacts subtle (a harder
set, where the pretrained model's features matter more). The shipped model labels the real photos of a printed face as
spoof, so it starts well below 100%.

Each row runs `python -m training train DATA OUT --init best_model.pth --epochs 3
--batch-size B --lr LR [EXTRA...]` as a user would, exports `OUT/best.pth` to ONNX and
evaluates it on the test split with the app's own ONNX engine. Printed per row: the
starting model's validation accuracy, every epoch's, the accuracy of best.pth and the
test accuracy of its export against the shipped model's. Takes about a minute per row on
two busy cores. Not a unit test: run it by hand.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_synth import make_folders, of_kind, run_cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT  # samples/ and models/ come with the project
DEFAULT_ROWS = ["16:0.003", "16:0.01", "16:0.03", "32:0.003", "32:0.01", "32:0.03",
                "64:0.003", "64:0.01", "64:0.03"]


def _checked(result, what):
    rc, events, err = result
    if rc != 0:
        raise SystemExit(f"{what} failed: {err.strip().splitlines()[-1] if err.strip() else rc}")
    return events


def build(work: Path, strength: float) -> tuple[Path, Path]:
    samples = SHARED / "samples"
    suffix = "" if strength == 1 else f"-s{strength:g}"
    data, test = work / f"data{suffix}", work / f"test{suffix}"
    if not (data / "labels.csv").is_file():
        make_folders(work / f"raw{suffix}", samples, per_class=144, seed=0, strength=strength)
        _checked(run_cli("prep", work / f"raw{suffix}", data), "prep")
    if not (test / "labels.csv").is_file():
        make_folders(work / f"raw_test{suffix}", samples, per_class=60, seed=11,
                     strength=strength)
        _checked(run_cli("prep", work / f"raw_test{suffix}", test), "prep (test)")
    return data, test


def test_accuracy(test: Path, model: Path) -> float:
    events = _checked(run_cli("eval", test, model, "--split", "all"), f"eval {model}")
    return of_kind(events, "done")[0]["accuracy"]


def run_row(data: Path, test: Path, out: Path, batch: int, lr: float, epochs: int,
            init: Path, extra: list[str]) -> dict:
    started = time.monotonic()
    args = ["train", data, out, "--init", init, "--epochs", epochs, "--batch-size", batch,
            "--lr", lr, *extra]
    rc, events, err = run_cli(*args, timeout=3600)
    row = {"batch": batch, "lr": lr, "extra": " ".join(extra), "rc": rc,
           "seconds": round(time.monotonic() - started, 1)}
    init_metric = of_kind(events, "metric", scope="init")
    row["start_val"] = init_metric[0]["val_acc"] if init_metric else None
    row["epochs_val"] = [e["val_acc"] for e in of_kind(events, "metric", scope="epoch")]
    row["epochs_val_loss"] = [round(e["val_loss"], 3) for e in of_kind(events, "metric", scope="epoch")]
    done = of_kind(events, "done")
    row["best_val"] = done[0]["best_val_acc"] if done else None
    row["messages"] = [e["message"] for e in of_kind(events, "log")
                       if "starting model" in e["message"] or "beat" in e["message"]]
    if rc != 0:
        row["error"] = err.strip().splitlines()[-1] if err.strip() else ""
        return row
    onnx = out / "best.onnx"
    _checked(run_cli("export", out / "best.pth", onnx), "export")
    row["test_acc"] = test_accuracy(test, onnx)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, help="scratch folder (datasets are reused)")
    parser.add_argument("--rows", nargs="+", default=DEFAULT_ROWS, metavar="BATCH:LR")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--extra", default="", help="more train arguments, one string")
    parser.add_argument("--tag", default="run", help="name of this table's run folders")
    parser.add_argument("--strength", type=float, default=1.0,
                        help="recapture artefact strength (1 = plain, 0.3 = subtle)")
    args = parser.parse_args(argv)
    init = SHARED / "models" / "best_model.pth"
    data, test = build(args.work, args.strength)
    pretrained_test = test_accuracy(test, SHARED / "models" / "best_model.onnx")
    print(f"pretrained best_model.onnx: test accuracy {pretrained_test:.3f} "
          f"({test})", flush=True)
    rows = []
    for spec in args.rows:
        batch, lr = spec.split(":")
        out = args.work / f"{args.tag}-b{batch}-lr{lr}"
        row = run_row(data, test, out, int(batch), float(lr), args.epochs, init,
                      args.extra.split())
        rows.append(row)
        verdict = ("ERROR " + row.get("error", "")) if row["rc"] else (
            "better" if row["best_val"] > row["start_val"] and row["test_acc"] > pretrained_test
            else "NOT better")
        print(f"batch {batch:>3} lr {lr:<6} start {row['start_val']:.3f} epochs "
              f"{' '.join(f'{v:.3f}' for v in row['epochs_val'])} (val loss "
              f"{' '.join(map(str, row['epochs_val_loss']))}) best.pth {row['best_val'] or 0:.3f} "
              f"test {row.get('test_acc', 0):.3f} vs {pretrained_test:.3f}  {verdict}  "
              f"[{row['seconds']:.0f} s]", flush=True)
    (args.work / f"{args.tag}.json").write_text(json.dumps(
        {"pretrained_test": pretrained_test, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
