#!/usr/bin/env python3
"""Checks that `pip install ./python` reuses the test build's dependencies.

maturin builds crates/toxpy alone, and Cargo enables on each shared
dependency only the features toxpy's own graph asks for; `cargo xtask test`
builds the whole workspace with the features of xtask's TEST_FEATURES
(dev-dependencies included), and the extension with TEST_FEATURES' toxpy ones.
Where the two differ, the dependency and everything above it (burn,
tokenizers) is compiled twice. crates/toxpy/Cargo.toml lists the differing
crates with the workspace's features; this script prints what still differs
(host = build scripts and proc-macros, target = the library code) and exits 1
if anything does. It runs only `cargo tree`, never a build.

Blind spot: cargo tree prints a shared dependency once, so a build-time
(host) unit seen only behind a `(*)` is missed. The memchr of
pliron-derive's build was (session 5: toxpy alone built it without
`default`, which rebuilt cubecl and burn). The proof is a clean `.ci/run`:
maturin's step must take about a minute, or read
target/release/.fingerprint/NAME-*/lib-NAME.json ("features") of the
crates it rebuilt.

    python3 scripts/check_feature_unification.py
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
import sys


def units(*selection: str) -> dict[tuple[str, str], str]:
    """(host|target, "name version") -> comma-separated features, from cargo tree."""
    tree = subprocess.run(
        ["cargo", "tree", "-e", "normal,build,dev", "-f", "{p}|{f}", *selection],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found: dict[tuple[str, str], str] = {}
    stack: list[tuple[int, bool]] = []  # (depth, is a host unit)
    headings: dict[int, str] = {}  # depth -> "[build-dependencies]" etc. for nodes at that depth
    for line in tree.splitlines():
        match = re.match(r"^((?:[│├└─ ]{4})*)(.*)$", line)
        if match is None or not match.group(2):
            continue
        depth, rest = len(match.group(1)) // 4, match.group(2)
        if rest.startswith("["):
            headings[depth + 1] = rest
            continue
        while stack and stack[-1][0] >= depth:
            stack.pop()
        for deeper in [d for d in headings if d > depth + 1]:
            del headings[deeper]
        host = (
            (stack[-1][1] if stack else False)
            or headings.get(depth, "").startswith("[build-dependencies]")
            or "(proc-macro)" in rest
        )
        rest = re.sub(r" \((?:\*|proc-macro|/[^)]*)\)", "", rest)
        name, _, features = rest.partition("|")
        found[("host" if host else "target", name)] = features
        stack.append((depth, host))
        headings.pop(depth + 1, None)
    return found


def test_features() -> str:
    """xtask's TEST_FEATURES (xtask/src/test.rs), the one list of them."""
    source = (Path(__file__).resolve().parents[1] / "xtask" / "src" / "test.rs").read_text(encoding="utf-8")
    match = re.search(r'pub const TEST_FEATURES: &str = "((?:[^"\\]|\\\n)*)";', source)
    if match is None:
        raise SystemExit("TEST_FEATURES not found in xtask/src/test.rs")
    return match.group(1).replace("\\\n", "")


def main() -> int:
    features = test_features()
    toxpy_features = ",".join(f.split("/", 1)[1] for f in features.split(",") if f.startswith("toxpy/"))
    python_build = units("-p", "toxpy", "--features", toxpy_features)
    test_build = units("--workspace", "--features", features)
    differing = [
        (unit, features, test_build.get(unit))
        for unit, features in sorted(python_build.items())
        # toxmodel's own features (int8-experiment) change toxmodel alone.
        if test_build.get(unit) != features and not unit[1].startswith(("toxpy ", "toxmodel "))
    ]
    for (kind, name), features, workspace_features in differing:
        print(f"{kind} {name}: toxpy alone [{features}], the workspace [{workspace_features}]")
    if differing:
        print(f"{len(differing)} dependencies would be compiled twice; add them to crates/toxpy/Cargo.toml")
        return 1
    print(f"toxpy's {len(python_build)} units all have the workspace test build's features")
    return 0


if __name__ == "__main__":
    sys.exit(main())
