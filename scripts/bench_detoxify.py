#!/usr/bin/env python3
"""PyTorch Detoxify, run the way `cargo xtask bench` compares toxscore with it.

Two commands:

  run      score a file of texts (one per line) with Detoxify on --device
           (cpu, the default, or cuda / cuda:N; --precision f16 halves the
           model, as torch users do with `model.model.half()`) and
           print one JSON line per text to stdout as each batch finishes:
           {"index": LINE_NUMBER_FROM_0, "scores": {class: probability}}.
           --order arrival: Detoxify as users run it, `predict` on batches of
                            --batch-size texts in file order;
           --order sorted:  the same batches, but of texts sorted by token
                            length first (the tokenizing for the sort counts
                            in the time).
           At the end it prints one line to stderr:
           BENCH import_s=.. load_s=.. first_batch_s=.. score_s=.. texts=.. threads=..
           device=.. device_peak_mib=.. (torch's peak allocation on a GPU, else -)
           (seconds since the script started; the caller measures from the
           process start, interpreter start-up included).

  compare  read toxscore's `toxcli predict` output (one JSON object per text,
           in input order) and this script's `run` output, and print
           COMPARE texts=.. classes=.. max_abs_diff=.. mean_abs_diff=..

Offline: needs the checkpoint and a folder with config.json and the
tokenizer files (fixtures/large/original holds both):

  HF_HUB_OFFLINE=1 python scripts/bench_detoxify.py run \\
      --checkpoint fixtures/large/original/checkpoint.ckpt \\
      --hf-folder fixtures/large/original --input texts.txt --order arrival
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402


def seed_hub_cache(hf_folder: str) -> None:
    """Detoxify asks the Hugging Face hub for the base model's config
    (`BertConfig.from_pretrained("bert-base-uncased")`) even when it is given
    `huggingface_config_path`, then discards it for the local one. Offline,
    with no hub cache, that lookup fails. So, unless HF_HUB_CACHE is set, a
    scratch hub cache holding the local config.json as bert-base-uncased's
    answers it, and Detoxify runs unmodified."""
    if os.environ.get("HF_HUB_CACHE"):
        return
    import shutil
    import tempfile

    cache = tempfile.mkdtemp(prefix="bench-detoxify-hub-")
    revision = "0" * 40
    repo = os.path.join(cache, "models--bert-base-uncased")
    os.makedirs(os.path.join(repo, "refs"))
    os.makedirs(os.path.join(repo, "snapshots", revision))
    with open(os.path.join(repo, "refs", "main"), "w") as file:
        file.write(revision)
    shutil.copy(os.path.join(hf_folder, "config.json"), os.path.join(repo, "snapshots", revision, "config.json"))
    os.environ["HF_HUB_CACHE"] = cache


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    seed_hub_cache(args.hf_folder)
    import torch
    from detoxify import Detoxify

    imported = time.perf_counter()
    model = Detoxify(
        model_type="original",
        checkpoint=args.checkpoint,
        device=args.device,
        huggingface_config_path=args.hf_folder,
    )
    if args.precision == "f16":
        model.model.half()
    on_gpu = args.device.startswith("cuda")
    if on_gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    loaded = time.perf_counter()

    with open(args.input, encoding="utf-8") as file:
        texts = file.read().split("\n")
    if texts and texts[-1] == "":
        texts.pop()
    order = list(range(len(texts)))
    if args.order == "sorted":
        lengths = [len(ids) for ids in model.tokenizer(texts, truncation=True)["input_ids"]]
        order.sort(key=lambda idx: lengths[idx])

    first_batch = None
    out = sys.stdout
    for start in range(0, len(order), args.batch_size):
        chunk = order[start : start + args.batch_size]
        results = model.predict([texts[idx] for idx in chunk])
        for position, idx in enumerate(chunk):
            scores = {}
            for name, values in results.items():
                # predict squeezes a batch of one text to a bare number.
                scores[name] = values[position] if isinstance(values, list) else values
            out.write(json.dumps({"index": idx, "scores": scores}) + "\n")
        out.flush()
        if first_batch is None:
            first_batch = time.perf_counter()
    finished = time.perf_counter()
    print(
        "BENCH "
        f"import_s={imported - STARTED:.3f} load_s={loaded - imported:.3f} "
        f"first_batch_s={(first_batch or finished) - STARTED:.3f} score_s={finished - loaded:.3f} "
        f"texts={len(texts)} threads={torch.get_num_threads()} device={args.device} "
        f"device_peak_mib={torch.cuda.max_memory_allocated() / 2**20 if on_gpu else '-'}",
        file=sys.stderr,
    )
    return 0


def compare(args: argparse.Namespace) -> int:
    toxscore = []
    with open(args.toxscore, encoding="utf-8") as file:
        for line in file:
            row = json.loads(line)
            row.pop("text", None)
            toxscore.append(row)
    detoxify = {}
    with open(args.detoxify, encoding="utf-8") as file:
        for line in file:
            row = json.loads(line)
            detoxify[row["index"]] = row["scores"]
    if len(toxscore) != len(detoxify):
        print(f"error: toxscore scored {len(toxscore)} texts, Detoxify {len(detoxify)}", file=sys.stderr)
        return 1
    classes = sorted(set(toxscore[0]) & set(detoxify[0])) if toxscore else []
    if len(classes) < 6:
        print(
            f"error: too few classes in common: toxscore {sorted(toxscore[0])}, Detoxify {sorted(detoxify[0])}",
            file=sys.stderr,
        )
        return 1
    max_diff, total, count = 0.0, 0.0, 0
    for idx, row in enumerate(toxscore):
        for name in classes:
            diff = abs(float(row[name]) - float(detoxify[idx][name]))
            max_diff = max(max_diff, diff)
            total += diff
            count += 1
    print(
        f"COMPARE texts={len(toxscore)} classes={len(classes)} "
        f"max_abs_diff={max_diff:.3e} mean_abs_diff={total / max(count, 1):.3e}"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="score texts with Detoxify")
    run_parser.add_argument("--checkpoint", required=True)
    run_parser.add_argument("--hf-folder", required=True, help="folder with config.json and tokenizer files")
    run_parser.add_argument("--input", required=True, help="texts, one per line")
    run_parser.add_argument("--batch-size", type=int, default=32)
    run_parser.add_argument("--order", choices=["arrival", "sorted"], default="arrival")
    run_parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    run_parser.add_argument("--precision", choices=["f32", "f16"], default="f32")
    compare_parser = commands.add_parser("compare", help="max |toxscore - Detoxify| over all texts")
    compare_parser.add_argument("--toxscore", required=True)
    compare_parser.add_argument("--detoxify", required=True)
    args = parser.parse_args()
    return run(args) if args.command == "run" else compare(args)


if __name__ == "__main__":
    sys.exit(main())
