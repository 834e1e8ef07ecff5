// Compile one MJML file with the reference `mjml` package, in-process, N
// times after a warm-up, and print the mean and median time per compile
// as JSON.
// node bench.mjs FILE.mjml N
import { readFileSync } from "node:fs";
import mjml2html from "mjml";

const [file, n = "50"] = process.argv.slice(2);
const source = readFileSync(file, "utf8");
const runs = Number(n);
const opts = { validationLevel: "soft", minify: false, beautify: false };

const once = async () => {
  const out = await mjml2html(source, opts);
  if (!out.html) throw new Error("mjml produced no HTML");
  return out;
};
const first = await once();
for (let i = 0; i < 10; i++) await once();
const times = [];
for (let i = 0; i < runs; i++) {
  const t = process.hrtime.bigint();
  await once();
  times.push(Number(process.hrtime.bigint() - t));
}
times.sort((a, b) => a - b);
console.log(JSON.stringify({
  version: JSON.parse(readFileSync(new URL("./node_modules/mjml/package.json", import.meta.url))).version,
  runs,
  ms_per_compile: times.reduce((a, b) => a + b, 0) / runs / 1e6,
  ms_median: times[Math.floor(runs / 2)] / 1e6,
  html_bytes: first.html.length,
  errors: (first.errors || []).length,
}));
