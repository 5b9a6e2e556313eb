#!/usr/bin/env python3
"""Lists every foreign crate's type in isosock's public API and fails on any not allowed.

The stable toolchain's stand-in for `cargo check-external-types` (which needs a pinned
nightly): reads rustdoc's JSON output (`cargo rustdoc --lib -- -Z unstable-options
--output-format json`, once per target), walks every public item of the crate (function and
method signatures, generics and where-bounds, public struct fields, enum variants, trait impls
with their associated types and method signatures, type aliases, constants, re-exports), and
collects each path whose crate is not isosock or the standard library (std, core, alloc).

Each one is compared with the allow-list (`external-types.toml` at the repository root:
`allowed_external_types`, the same key `cargo check-external-types` reads; `*` matches any
rest of a path). Prints each foreign type with the public items that expose it; exits 1 if
one is not allowed, or if an allow-list entry matches nothing in any of the given JSON files
(so the list stays true).

Usage: check_external_types.py ALLOW_LIST.toml RUSTDOC.json [RUSTDOC.json ...]
"""

import fnmatch
import json
import sys
import tomllib

OWN_CRATES = {"isosock", "std", "core", "alloc"}


class Walker:
    """Collects `foreign path -> {public items exposing it}` from one rustdoc JSON file."""

    def __init__(self, doc):
        self.doc = doc
        self.index = doc["index"]
        self.paths = doc["paths"]
        self.crates = doc["external_crates"]
        self.found = {}
        self.seen = set()

    # --- identifying paths -------------------------------------------------------------

    def foreign_path(self, item_id):
        """The full path of `item_id` if it belongs to a foreign crate, else None."""
        key = str(item_id)
        summary = self.paths.get(key)
        if summary is not None:
            crate_id, path = summary["crate_id"], summary["path"]
        elif key in self.index:
            crate_id, path = self.index[key]["crate_id"], None
        else:
            return None
        if crate_id == 0:
            return None
        crate = self.crates.get(str(crate_id), {}).get("name", f"crate#{crate_id}")
        if crate in OWN_CRATES:
            return None
        return "::".join(path) if path else crate

    def note(self, item_id, where):
        path = self.foreign_path(item_id)
        if path is not None:
            self.found.setdefault(path, set()).add(where)

    # --- types, paths, bounds, generics ------------------------------------------------

    def path(self, p, where):
        if p is None:
            return
        self.note(p["id"], where)
        self.generic_args(p.get("args"), where)

    def generic_args(self, args, where):
        if not args:
            return
        if "angle_bracketed" in args:
            ab = args["angle_bracketed"]
            for arg in ab.get("args", []):
                if "type" in arg:
                    self.type(arg["type"], where)
            for c in ab.get("constraints", []):
                self.generic_args(c.get("args"), where)
                binding = c.get("binding", {})
                if "equality" in binding and "type" in binding["equality"]:
                    self.type(binding["equality"]["type"], where)
                for b in binding.get("constraint", []):
                    self.bound(b, where)
        elif "parenthesized" in args:
            par = args["parenthesized"]
            for t in par.get("inputs", []):
                self.type(t, where)
            if par.get("output"):
                self.type(par["output"], where)

    def bound(self, b, where):
        if "trait_bound" in b:
            tb = b["trait_bound"]
            self.path(tb["trait"], where)
            for gp in tb.get("generic_params", []):
                self.generic_param(gp, where)

    def type(self, t, where):
        if not isinstance(t, dict):
            return
        if "resolved_path" in t:
            self.path(t["resolved_path"], where)
        elif "dyn_trait" in t:
            for pt in t["dyn_trait"]["traits"]:
                self.path(pt["trait"], where)
        elif "impl_trait" in t:
            for b in t["impl_trait"]:
                self.bound(b, where)
        elif "borrowed_ref" in t:
            self.type(t["borrowed_ref"]["type"], where)
        elif "raw_pointer" in t:
            self.type(t["raw_pointer"]["type"], where)
        elif "slice" in t:
            self.type(t["slice"], where)
        elif "array" in t:
            self.type(t["array"]["type"], where)
        elif "tuple" in t:
            for x in t["tuple"]:
                self.type(x, where)
        elif "pat" in t:
            self.type(t["pat"]["type"], where)
        elif "qualified_path" in t:
            q = t["qualified_path"]
            self.type(q["self_type"], where)
            self.path(q.get("trait"), where)
            self.generic_args(q.get("args"), where)
        elif "function_pointer" in t:
            fp = t["function_pointer"]
            self.sig(fp["sig"], where)
            for gp in fp.get("generic_params", []):
                self.generic_param(gp, where)
        # generic, primitive, infer: nothing foreign

    def generic_param(self, gp, where):
        kind = gp["kind"]
        if "type" in kind:
            for b in kind["type"].get("bounds", []):
                self.bound(b, where)
            self.type(kind["type"].get("default"), where)
        elif "const" in kind:
            self.type(kind["const"]["type"], where)

    def generics(self, g, where):
        if not g:
            return
        for gp in g.get("params", []):
            self.generic_param(gp, where)
        for wp in g.get("where_predicates", []):
            if "bound_predicate" in wp:
                bp = wp["bound_predicate"]
                self.type(bp["type"], where)
                for b in bp["bounds"]:
                    self.bound(b, where)
                for gp in bp.get("generic_params", []):
                    self.generic_param(gp, where)
            elif "eq_predicate" in wp:
                ep = wp["eq_predicate"]
                self.type(ep["lhs"], where)
                if "type" in ep["rhs"]:
                    self.type(ep["rhs"]["type"], where)

    def sig(self, sig, where):
        for _, t in sig["inputs"]:
            self.type(t, where)
        self.type(sig.get("output"), where)

    # --- items -------------------------------------------------------------------------

    def is_public(self, item):
        # Items of trait impls and enum variants have "default" visibility: as public as the
        # impl or enum that holds them.
        return item["visibility"] in ("public", "default")

    def item(self, item_id, where):
        key = str(item_id)
        if (key, where) in self.seen:
            return
        self.seen.add((key, where))
        item = self.index.get(key)
        if item is None or item["crate_id"] != 0:
            # A re-export of a foreign item (`pub use other::Thing`).
            self.note(item_id, where)
            return
        if not self.is_public(item):
            return
        kind, inner = next(iter(item["inner"].items()))
        name = item.get("name")
        here = f"{where}::{name}" if name else where
        if kind == "module":
            for child in inner["items"]:
                self.item(child, here)
        elif kind == "use":
            if inner.get("id") is not None:
                target = here if not inner["is_glob"] else where
                self.item(inner["id"], target)
        elif kind == "function":
            self.sig(inner["sig"], here)
            self.generics(inner["generics"], here)
        elif kind == "struct":
            self.generics(inner["generics"], here)
            sk = inner["kind"]
            fields = []
            if isinstance(sk, dict) and "plain" in sk:
                fields = sk["plain"]["fields"]
            elif isinstance(sk, dict) and "tuple" in sk:
                fields = [f for f in sk["tuple"] if f is not None]
            for f in fields:
                self.item(f, here)
            self.impls(inner["impls"], here)
        elif kind == "union":
            self.generics(inner["generics"], here)
            for f in inner["fields"]:
                self.item(f, here)
            self.impls(inner["impls"], here)
        elif kind == "enum":
            self.generics(inner["generics"], here)
            for v in inner["variants"]:
                self.item(v, here)
            self.impls(inner["impls"], here)
        elif kind == "variant":
            vk = inner["kind"]
            fields = []
            if isinstance(vk, dict) and "tuple" in vk:
                fields = [f for f in vk["tuple"] if f is not None]
            elif isinstance(vk, dict) and "struct" in vk:
                fields = vk["struct"]["fields"]
            for f in fields:
                self.item(f, here)
        elif kind == "struct_field":
            self.type(inner, here)
        elif kind == "trait":
            self.generics(inner["generics"], here)
            for b in inner["bounds"]:
                self.bound(b, here)
            for child in inner["items"]:
                self.item(child, here)
        elif kind == "impl":
            self.impl_item(item, where)
        elif kind == "type_alias":
            self.type(inner["type"], here)
            self.generics(inner["generics"], here)
        elif kind in ("constant", "static"):
            self.type(inner["type"], here)
        elif kind == "assoc_const":
            self.type(inner["type"], here)
        elif kind == "assoc_type":
            self.generics(inner["generics"], here)
            for b in inner["bounds"]:
                self.bound(b, here)
            self.type(inner.get("type"), here)

    def impls(self, impl_ids, owner):
        for impl_id in impl_ids:
            self.item(impl_id, owner)

    def impl_item(self, item, owner):
        imp = item["inner"]["impl"]
        # Auto-trait impls (Send, Sync, ...) and blanket impls (`impl<T: Bound> Ext for T`)
        # come from the traits' crates; what makes them apply is listed where the bound's
        # trait is implemented.
        if imp["is_synthetic"] or imp["blanket_impl"] is not None:
            return
        trait = imp.get("trait")
        # Named as in qualified paths: `<isosock::Reader as AsyncRead>::poll_read`.
        where = f"<{owner} as {trait['path']}>" if trait is not None else owner
        self.path(trait, where)
        self.type(imp["for"], where)
        self.generics(imp["generics"], where)
        for child in imp["items"]:
            self.item(child, where)

    def run(self):
        self.item(self.doc["root"], "isosock")
        # The root module's own name was added by item(); strip the doubled prefix.
        return {
            path: {w.replace("isosock::isosock", "isosock", 1) for w in wheres}
            for path, wheres in self.found.items()
        }


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], "rb") as f:
        allowed = tomllib.load(f).get("allowed_external_types", [])
    used = {pattern: False for pattern in allowed}
    failed = False
    for json_path in argv[2:]:
        with open(json_path) as f:
            doc = json.load(f)
        found = Walker(doc).run()
        target = doc.get("target", {}).get("triple", json_path)
        print(f"foreign types in the public API ({target}):")
        for path in sorted(found):
            matches = [p for p in allowed if fnmatch.fnmatchcase(path, p)]
            for p in matches:
                used[p] = True
            mark = "ok " if matches else "NOT ALLOWED"
            failed |= not matches
            print(f"  {mark} {path}")
            for where in sorted(found[path]):
                print(f"        in {where}")
    stale = [p for p, hit in used.items() if not hit]
    for p in stale:
        print(f"allow-list entry {p!r} matches nothing in the public API: remove it")
    if failed:
        print(f"error: foreign types not in {argv[1]}; add them there deliberately "
              "(each couples isosock's semver to that crate's) or keep them out of the API")
    return 1 if failed or stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
