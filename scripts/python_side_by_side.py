#!/usr/bin/env python3
"""toxscore's Python package and the real `detoxify`, side by side (not CI).

Runs both on the same fixture checkpoints (fixtures/models/*) and texts
(fixtures/texts.json, repeated), each contender in a fresh subprocess per
model so that import time and peak RSS are its own, and prints per model:
the largest score difference between the two, import time, load time,
texts per second and peak RSS.

    PY_TOXSCORE=target/pyenv/bin/python   # has toxscore (pip install ./python)
    PYTHON=...                            # the reference environment (detoxify + torch):
                                          # scripts/reference-env.sh DIR, then DIR/bin/python
    python3 scripts/python_side_by_side.py --toxscore-python $PY_TOXSCORE --detoxify-python $PYTHON

Both score the texts in batches of --batch-size: Detoxify as its users call
it (`predict` on consecutive chunks), toxscore with one `predict` call
(it sorts by length and batches inside). Both use every core. Detoxify runs
offline: its hub lookup of the base config is answered from a scratch hub
cache seeded with the fixture's config.json, as scripts/bench_detoxify.py
and fixtures/generate.py do.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["bert", "roberta", "xlmr", "albert-original", "albert-unbiased"]


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM), in MiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def seed_hub_cache(model_type: str, folder: Path) -> None:
    """Detoxify asks the hub for `model_type`'s config even with
    huggingface_config_path; answer it offline from a scratch cache."""
    cache = Path(os.environ["HF_HUB_CACHE"])
    revision = "0" * 40
    repo = cache / ("models--" + model_type.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "snapshots" / revision).mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    (repo / "snapshots" / revision / "config.json").write_bytes((folder / "config.json").read_bytes())


def worker(args: argparse.Namespace) -> int:
    """One contender, one model: prints one JSON object."""
    folder = ROOT / "fixtures" / "models" / args.model
    texts = json.loads((ROOT / "fixtures" / "texts.json").read_text(encoding="utf-8")) * args.repeat
    checkpoint = folder / "checkpoint.ckpt"
    if args.contender == "detoxify":
        os.environ["HF_HUB_CACHE"] = tempfile.mkdtemp(prefix="side-by-side-hub-")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        reference = json.loads((folder / "reference.json").read_text(encoding="utf-8"))
        seed_hub_cache(reference["model_type"], folder)
        before_import = time.perf_counter()
        from detoxify import Detoxify
    else:
        before_import = time.perf_counter()
        from toxscore import Detoxify
    imported = time.perf_counter()
    model = Detoxify(checkpoint=str(checkpoint), device="cpu", huggingface_config_path=str(folder))
    loaded = time.perf_counter()
    scores: dict[str, list[float]] = {}
    if args.contender == "detoxify":
        for start in range(0, len(texts), args.batch_size):
            for name, values in model.predict(texts[start : start + args.batch_size]).items():
                scores.setdefault(name, []).extend(values if isinstance(values, list) else [values])
    else:
        scores = model.predict(texts, batch_size=args.batch_size)
    scored = time.perf_counter()
    print(
        json.dumps(
            {
                "import_s": imported - before_import,
                "process_to_import_s": imported - STARTED,
                "load_s": loaded - imported,
                "score_s": scored - loaded,
                "texts": len(texts),
                "peak_rss_mib": peak_rss_mib(),
                "scores": scores,
            }
        )
    )
    return 0


def run_contender(python: str, contender: str, model: str, args: argparse.Namespace) -> dict:
    command = [
        python,
        __file__,
        "worker",
        "--contender",
        contender,
        "--model",
        model,
        "--repeat",
        str(args.repeat),
        "--batch-size",
        str(args.batch_size),
    ]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"{contender} on {model} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    measured["process_s"] = time.perf_counter() - started
    return measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    work = sub.add_parser("worker")
    work.add_argument("--contender", choices=["toxscore", "detoxify"], required=True)
    work.add_argument("--model", choices=MODELS, required=True)
    for options in (parser, work):
        options.add_argument("--repeat", type=int, default=20, help="texts.json repeated this many times (default 20)")
        options.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--toxscore-python", default=sys.executable)
    parser.add_argument("--detoxify-python", required=False)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    if args.command == "worker":
        return worker(args)
    if not args.detoxify_python:
        parser.error("--detoxify-python is required (the interpreter of an environment with detoxify)")

    print(f"cpu: {cpu_model()}, {os.cpu_count()} cores; texts.json x {args.repeat}, batch size {args.batch_size}")
    header = f"{'model':<16} {'contender':<9} {'import s':>8} {'load s':>7} {'texts/s':>9} {'peak RSS MiB':>12} {'max |diff|':>11}"
    print(header)
    print("-" * len(header))
    worst = 0.0
    for model in args.models.split(","):
        toxscore = run_contender(args.toxscore_python, "toxscore", model, args)
        detoxify = run_contender(args.detoxify_python, "detoxify", model, args)
        if list(toxscore["scores"]) != list(detoxify["scores"]):
            raise SystemExit(f"{model}: classes differ: {list(toxscore['scores'])} vs {list(detoxify['scores'])}")
        difference = max(
            abs(a - b)
            for name in detoxify["scores"]
            for a, b in zip(toxscore["scores"][name], detoxify["scores"][name], strict=True)
        )
        worst = max(worst, difference)
        for name, measured in (("toxscore", toxscore), ("detoxify", detoxify)):
            print(
                f"{model:<16} {name:<9} {measured['import_s']:>8.3f} {measured['load_s']:>7.3f} "
                f"{measured['texts'] / measured['score_s']:>9.0f} {measured['peak_rss_mib']:>12.0f} "
                f"{difference if name == 'toxscore' else float('nan'):>11.2e}"
            )
    print(f"max |toxscore - detoxify| over all models, texts and classes: {worst:.2e}")
    return 0


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
