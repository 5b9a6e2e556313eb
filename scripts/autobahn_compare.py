"""Compares Autobahn|Testsuite verdicts with autobahn/expected.json (scripts/autobahn.sh runs it).

Reads REPORTS/{client,server}/index.json and checks every case's `behavior` and
`behaviorClose` against the expected file, {"client": {"1.1.1": {"behavior": "OK",
"behaviorClose": "OK"}, ...}, "server": {...}}. A case worse than expected, or missing from
the results, fails (exit 1); a case better than expected is reported so the file can be
raised, and passes. `--update` writes the expected file from the results instead.
"""

import argparse
import json
import sys
from pathlib import Path

AGENT = "isosock"
MODES = ("client", "server")
FIELDS = ("behavior", "behaviorClose")
# Worst to best. UNIMPLEMENTED (the peer did not negotiate an optional feature such as
# permessage-deflate) sits above FAILED and below NON-STRICT: gaining the feature may turn a
# case into anything that is not a failure. INFORMATIONAL is a case whose outcome the RFC
# leaves open (7.1.6: a big message then a close, back to back; 7.13.x: close codes 5000 and
# 65535), recorded without a grade; it sits just below OK, so OK turning into it is reported.
RANK = ("FAILED", "UNIMPLEMENTED", "NON-STRICT", "INFORMATIONAL", "OK")


def case_key(case):
    return tuple(int(part) for part in case.split("."))


def load_results(reports):
    results = {}
    for mode in MODES:
        path = reports / mode / "index.json"
        try:
            index = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            print(f"{mode}: no results ({path}: {e})", file=sys.stderr)
            index = {}
        cases = index.get(AGENT, {})
        results[mode] = {
            case: {field: cases[case].get(field, "MISSING") for field in FIELDS} for case in cases
        }
    return results


def rank(verdict):
    return RANK.index(verdict) if verdict in RANK else -1


def main():
    root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=Path, default=root / "tests/artifacts/autobahn")
    parser.add_argument("--expected", type=Path, default=root / "autobahn/expected.json")
    parser.add_argument(
        "--update", action="store_true", help="write the expected file from the results"
    )
    args = parser.parse_args()

    results = load_results(args.reports)

    print_tables(results)

    if args.update:
        if not all(results[mode] for mode in MODES):
            print(
                "autobahn: not updating the expected file from a run without results",
                file=sys.stderr,
            )
            return 1
        # One case a line, in case order, so a raised verdict is a one-line diff.
        sections = []
        for mode in MODES:
            lines = [
                f"    {json.dumps(case)}: {json.dumps(results[mode][case])}"
                for case in sorted(results[mode], key=case_key)
            ]
            sections.append(f'  "{mode}": {{\n' + ",\n".join(lines) + "\n  }")
        args.expected.parent.mkdir(parents=True, exist_ok=True)
        args.expected.write_text("{\n" + ",\n".join(sections) + "\n}\n")
        print(f"autobahn: wrote {args.expected}")
        return 0

    try:
        expected = json.loads(args.expected.read_text())
    except (OSError, ValueError) as e:
        print(
            f"autobahn: cannot read the expected verdicts ({e}); --update writes them",
            file=sys.stderr,
        )
        return 1
    passed, failed, worse, better = 0, 0, [], []
    for mode in MODES:
        want_cases = sorted(expected.get(mode, {}), key=case_key)
        missing = [case for case in want_cases if case not in results[mode]]
        for case in want_cases:
            want, got = expected[mode][case], results[mode].get(case)
            if got is None:
                continue
            ranks = [(rank(got[f]), rank(want[f])) for f in FIELDS]
            if any(g < w for g, w in ranks):
                worse.append(f"{mode} {case}: expected {fmt(want)}, got {fmt(got)}")
                failed += 1
                continue
            passed += 1
            if any(g > w for g, w in ranks):
                better.append(f"{mode} {case}: expected {fmt(want)}, got {fmt(got)}")
        for case in sorted(set(results[mode]) - set(expected.get(mode, {})), key=case_key):
            better.append(
                f"{mode} {case}: not in the expected file, got {fmt(results[mode][case])}"
            )
        # A run cut short misses a whole tail of cases: name them, or their range if many.
        failed += len(missing)
        if 0 < len(missing) <= 10:
            worse.extend(
                f"{mode} {case}: expected {fmt(expected[mode][case])}, missing" for case in missing
            )
        elif missing:
            worse.append(
                f"{mode}: {len(missing)} cases missing from the results ({missing[0]} ... {missing[-1]})"
            )

    if better:
        print(
            f"\nbetter than expected ({len(better)}; raise autobahn/expected.json with --update):"
        )
        print("\n".join(f"  {line}" for line in better))
    if worse:
        print(f"\nworse than expected ({failed}):")
        print("\n".join(f"  {line}" for line in worse))
    print(f"\nautobahn: {passed} passed, {failed} failed")
    return 1 if failed else 0


def print_tables(results):
    """Per mode: how many cases got each `behavior`, then the cases not OK/OK, grouped."""
    columns = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
    print(f"{'mode':8}{'cases':>6}" + "".join(f"{c:>{len(c) + 2}}" for c in columns))
    for mode in MODES:
        counts = {verdict: 0 for verdict in columns}
        for verdicts in results[mode].values():
            counts[verdicts["behavior"] if verdicts["behavior"] in counts else "FAILED"] += 1
        print(
            f"{mode:8}{len(results[mode]):>6}"
            + "".join(f"{counts[c]:>{len(c) + 2}}" for c in columns)
        )
    for mode in MODES:
        groups = {}
        for case, verdicts in results[mode].items():
            if verdicts != {"behavior": "OK", "behaviorClose": "OK"}:
                groups.setdefault(fmt(verdicts), []).append(case)
        for verdict, cases in sorted(groups.items()):
            print(f"  {mode} {verdict}: {compress(cases, results[mode])}")


def compress(cases, results):
    """Lists cases, writing a whole section (all of 12.*) as one entry."""
    out, done = [], set()
    for case in sorted(cases, key=case_key):
        section = case.split(".")[0]
        if section in done:
            continue
        whole = [c for c in results if c.split(".")[0] == section]
        if len(whole) > 1 and all(results[c] == results[case] for c in whole):
            out.append(f"{section}.* ({len(whole)})")
            done.add(section)
        else:
            out.append(case)
    return ", ".join(out)


def fmt(verdicts):
    return f"{verdicts['behavior']}/{verdicts['behaviorClose']}"


if __name__ == "__main__":
    sys.exit(main())
