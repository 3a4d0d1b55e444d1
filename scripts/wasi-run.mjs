// Runs a wasm32-wasip1 program under Node's WASI and exits with its status.
//
//   node scripts/wasi-run.mjs PROGRAM.wasm DIR [ARGS...]
//
// DIR is preopened at its own absolute path (the only directory the program can see) and is
// passed as the program's first argument, followed by ARGS. A trap (a Rust panic aborts on
// wasm32-wasip1) exits with 134, as an abort does natively; a program or directory that
// cannot be opened exits with 2.
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { argv, env, exit } from "node:process";
import { WASI } from "node:wasi";

const [program, dir, ...rest] = argv.slice(2);
if (!program || !dir) {
  console.error("usage: node scripts/wasi-run.mjs PROGRAM.wasm DIR [ARGS...]");
  exit(2);
}
const root = resolve(dir);
let status;
try {
  const wasi = new WASI({
    version: "preview1",
    args: [program, root, ...rest],
    env: { RUST_BACKTRACE: env.RUST_BACKTRACE ?? "0" },
    preopens: { [root]: root },
    returnOnExit: true,
  });
  const module = await WebAssembly.compile(await readFile(program));
  const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
  status = wasi.start(instance);
} catch (e) {
  console.error(`wasi-run: ${program}: ${e}`);
  status = e instanceof WebAssembly.RuntimeError ? 134 : 2;
}
exit(status);
