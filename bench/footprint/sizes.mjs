// What a .wasm file's bytes are made of, from the module itself (no twiggy needed): each
// function body's size named by the "name" custom section (keep it with `wasm-opt -g`), data
// segments, the other sections. Prints markdown: the biggest functions, and the code and data
// grouped by crate (the first crate a function's name mentions, or isosock if it mentions
// isosock anywhere, e.g. `drop_in_place<Arc<isosock::...>>`).
//
// Usage: node bench/footprint/sizes.mjs FILE.wasm [TOP_N]
//
// Function names are a guide, not the whole truth: with LTO an async function's body is
// inlined into whatever polls it, so code under `js_sys::futures::future_to_promise::...`
// holds the exported function's future, with isosock's dial/read/write state machines in it.
import { readFileSync } from "node:fs";

const [file, topArg] = process.argv.slice(2);
if (!file) {
  console.error("usage: node sizes.mjs FILE.wasm [TOP_N]");
  process.exit(2);
}
const TOP = Number(topArg ?? 25);
const bytes = readFileSync(file);
let pos = 8;

function leb(buf, p) {
  let result = 0;
  let shift = 0;
  for (;;) {
    const b = buf[p.at++];
    result += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if (!(b & 0x80)) return result;
  }
}
const name = (buf, p) => {
  const len = leb(buf, p);
  const s = buf.subarray(p.at, p.at + len).toString("utf8");
  p.at += len;
  return s;
};
function skipLimits(buf, p) {
  const flags = buf[p.at++];
  leb(buf, p);
  if (flags & 1) leb(buf, p);
}
/** Skips a constant expression (ends with 0x0b; the ones data segments use have no nesting). */
function skipExpr(buf, p) {
  while (buf[p.at++] !== 0x0b);
}

let importedFuncs = 0;
const bodies = []; // [index, size]
const data = []; // [index, size]
const sections = new Map(); // label -> bytes, section headers included
const funcNames = new Map();
const dataNames = new Map();
const SECTION = ["custom", "type", "import", "function", "table", "memory", "global", "export",
  "start", "element", "code", "data", "data count", "tag"];

while (pos < bytes.length) {
  const start = pos;
  const id = bytes[pos++];
  const p = { at: pos };
  const size = leb(bytes, p);
  const body = p.at;
  const end = body + size;
  let label = SECTION[id] ?? `section ${id}`;
  if (id === 2) {
    for (let n = leb(bytes, p); n > 0; n--) {
      name(bytes, p);
      name(bytes, p);
      const kind = bytes[p.at++];
      if (kind === 0) { importedFuncs++; leb(bytes, p); }
      else if (kind === 1) { p.at++; skipLimits(bytes, p); }
      else if (kind === 2) skipLimits(bytes, p);
      else if (kind === 3) p.at += 2;
      else if (kind === 4) { p.at++; leb(bytes, p); }
    }
  } else if (id === 10) {
    const n = leb(bytes, p);
    for (let i = 0; i < n; i++) {
      const s0 = p.at;
      const len = leb(bytes, p);
      p.at += len;
      bodies.push([importedFuncs + i, p.at - s0]);
    }
  } else if (id === 11) {
    const n = leb(bytes, p);
    for (let i = 0; i < n; i++) {
      const s0 = p.at;
      const flags = leb(bytes, p);
      if (flags === 2) leb(bytes, p);
      if (flags !== 1) skipExpr(bytes, p);
      const len = leb(bytes, p);
      p.at += len;
      data.push([i, p.at - s0]);
    }
  } else if (id === 0) {
    const custom = name(bytes, p);
    label = `custom "${custom}"`;
    if (custom === "name") {
      while (p.at < end) {
        const sub = bytes[p.at++];
        const subSize = leb(bytes, p);
        const subEnd = p.at + subSize;
        const target = sub === 1 ? funcNames : sub === 9 ? dataNames : null;
        if (target) {
          for (let n = leb(bytes, p); n > 0; n--) target.set(leb(bytes, p), name(bytes, p));
        }
        p.at = subEnd;
      }
    }
  }
  sections.set(label, (sections.get(label) ?? 0) + (end - start));
  pos = end;
}

const PRIMITIVES = new Set(["char", "str", "bool", "u8", "u16", "u32", "u64", "u128", "usize",
  "i8", "i16", "i32", "i64", "i128", "isize", "f32", "f64", "dyn", "impl"]);
function crateOf(fn) {
  if (/^func\[\d+\]$/.test(fn)) return "(unnamed: added by wasm-bindgen)";
  if (/\bisosock::/.test(fn)) return "isosock";
  if (/^(__wbindgen|__wbg|__externref)|externref shim|closure.*shim|^wasm_bindgen::/.test(fn)) {
    return "wasm-bindgen";
  }
  if (/^js_sys::futures/.test(fn)) return "wasm-bindgen-futures (js_sys::futures)";
  if (/^(__rust|__rdl|__rg|__rustc)/.test(fn)) return "std";
  const m = fn.replace(/^[<&*\s(]+|^(mut|const|dyn) /g, "").match(/^[A-Za-z_][A-Za-z0-9_]*/);
  if (!m) return "(other)";
  if (PRIMITIVES.has(m[0])) return "core";
  if (/^[A-Z]$/.test(m[0])) return "(generic, e.g. `<T as ...>`)";
  return m[0].replaceAll("_", "-");
}

const namesBytes = sections.get('custom "name"') ?? 0;
// Shares are of the file as shipped: without the name section.
const total = bytes.length - namesBytes;
const pct = (n) => `${((100 * n) / total).toFixed(1)}%`;
const kb = (n) => n.toLocaleString("en-US");
const short = (s) => (s.length > 110 ? s.slice(0, 107) + "..." : s).replaceAll("|", "\\|");
const nameOf = (i) => funcNames.get(i) ?? `func[${i}]`;
const codeTotal = bodies.reduce((a, [, s]) => a + s, 0);
const dataTotal = data.reduce((a, [, s]) => a + s, 0);

console.log(`\`${file.split("/").pop()}\`: ${kb(bytes.length)} bytes, ${bodies.length} functions ` +
  `(${kb(codeTotal)} B of code), ${data.length} data segments (${kb(dataTotal)} B)` +
  (namesBytes ? `, of which the name section is ${kb(namesBytes)} B (not shipped)` : "") + ".\n");
if (funcNames.size === 0) console.log("(no name section: build with `wasm-opt -g` for names)\n");

const byCrate = new Map();
for (const [i, s] of bodies) {
  const c = crateOf(nameOf(i));
  const e = byCrate.get(c) ?? { code: 0, n: 0 };
  e.code += s;
  e.n++;
  byCrate.set(c, e);
}
console.log("| crate (by function name) | functions | code bytes | share of the file |");
console.log("| --- | ---: | ---: | ---: |");
for (const [c, e] of [...byCrate].sort((a, b) => b[1].code - a[1].code)) {
  console.log(`| ${c} | ${e.n} | ${kb(e.code)} | ${pct(e.code)} |`);
}
console.log(`| data segments (strings, tables) | ${data.length} | ${kb(dataTotal)} | ${pct(dataTotal)} |`);
const other = [...sections].filter(([l]) => !["code", "data", 'custom "name"'].includes(l));
const otherTotal = other.reduce((a, [, s]) => a + s, 0);
console.log(`| other sections (${other.map(([l, s]) => `${l} ${s}`).join(", ")}) | | ${kb(otherTotal)} | ${pct(otherTotal)} |`);

console.log(`\n| biggest items | bytes | share |`);
console.log("| --- | ---: | ---: |");
const items = [
  ...bodies.map(([i, s]) => [nameOf(i), s]),
  ...data.map(([i, s]) => [`data ${dataNames.get(i) ?? i}`, s]),
];
for (const [n, s] of items.sort((a, b) => b[1] - a[1]).slice(0, TOP)) {
  console.log(`| ${short(n)} | ${kb(s)} | ${pct(s)} |`);
}
