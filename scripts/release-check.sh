#!/usr/bin/env bash
# Release check: what a user installs from npm must work without the workspace. Builds the packages,
# packs each one exactly as `pnpm publish` would, lints the tarballs (publint, arethetypeswrong), then
# installs them with npm into a scratch project outside the workspace and runs one real op per family
# on WebGPU there (scripts/release-smoke.mjs), plus the `webattn` binary. Exits non-zero on any failure.
# Tarballs go to out/release/ (ignored); the scratch project is a temporary folder, removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
OUT="$ROOT/out/release"
TARBALLS="$OUT/tarballs"

step() { printf '\n=== release check: %s\n' "$*"; }
start=$SECONDS

step "build"
# A turbo cache hit when CI has just built: seconds.
pnpm -s build --output-logs=errors-only

rm -rf "$OUT"
mkdir -p "$TARBALLS"

step "pack every package with pnpm"
# pnpm pack (not npm pack) because it is what `pnpm publish` uploads: it rewrites `workspace:^` to the
# real version range, which npm would publish verbatim and no registry install could resolve.
packages=()
for dir in packages/*/; do
  dir="${dir%/}"
  [ -f "$dir/package.json" ] || continue
  if [ "$(node -p "require('./$dir/package.json').private === true")" = true ]; then continue; fi
  packages+=("$dir")
  (cd "$dir" && pnpm pack --pack-destination "$TARBALLS" >/dev/null)
done
[ "${#packages[@]}" -gt 0 ] || { echo "no packages found under packages/" >&2; exit 1; }
ls -1 "$TARBALLS"

step "packed manifests: no workspace: protocol left, every export typed"
# The second half because attw passes a package that ships no types at all.
for tgz in "$TARBALLS"/*.tgz; do
  tar -xOzf "$tgz" package/package.json | node -e '
    const pkg = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
    const fields = ["dependencies", "peerDependencies", "optionalDependencies", "devDependencies"];
    const bad = fields.flatMap((f) =>
      Object.entries(pkg[f] ?? {})
        .filter(([, range]) => String(range).startsWith("workspace:"))
        .map(([name, range]) => `${f}.${name} is ${range}`),
    );
    for (const [entry, target] of Object.entries(pkg.exports ?? {})) {
      if (!entry.endsWith(".json") && typeof target?.types !== "string") bad.push(`exports["${entry}"] has no types`);
    }
    if (!pkg.exports) bad.push("no exports map");
    if (bad.length) {
      console.error(`${pkg.name}: ${bad.join(", ")}`);
      process.exit(1);
    }
    console.log(`${pkg.name}@${pkg.version}: ok`);
  '
done

step "publint"
# Checked on the tarballs rather than the folders, so that the files list is the published one.
# Errors (a missing file, `types` not first) always fail. --strict fails on warnings too: publint's
# warnings are breakage for some consumers (a file whose ESM/CJS syntax differs from how Node will load
# it, declarations read in the wrong module format, an exports glob that matches nothing, an invalid
# repository URL), every package is clean today, and a new one is cheaper to fix before publishing
# than after. Suggestions (advice, such as adding a field) are printed and do not fail.
for tgz in "$TARBALLS"/*.tgz; do
  pnpm exec publint run --strict "$tgz"
done

step "arethetypeswrong"
# On the same tarballs: what `attw --pack` checks, but on the pnpm-packed file (`--pack` runs
# `npm pack` on the folder again). Profile esm-only: these packages are ESM-only by design (type module,
# exports with `import` and `types` conditions only, Node >= 20), so CommonJS resolution (node16-cjs)
# and the pre-exports node10 resolver are out of scope: they would only report that require() reaches
# ESM files and that node10 cannot see subpath exports such as @webattn/core/testing. Node16 from ESM
# and bundler resolution are still checked, and every entry point must resolve to correct types there.
for tgz in "$TARBALLS"/*.tgz; do
  pnpm exec attw --profile esm-only --format table-flipped --no-emoji --no-color "$tgz"
done

step "install the tarballs with npm into a scratch project outside the workspace"
SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/webattn-release.XXXXXX")"
trap 'rm -rf "$SCRATCH"' EXIT
case "$SCRATCH" in "$ROOT"/*) echo "scratch project $SCRATCH is inside the workspace" >&2; exit 1 ;; esac
cp scripts/release-smoke.mjs "$SCRATCH/"
(
  cd "$SCRATCH"
  # Nothing from the workspace may leak in through the module path.
  unset NODE_PATH
  npm init -y >/dev/null
  npm pkg set type=module
  # All tarballs in one install, so that @webattn dependencies between them resolve to the tarballs;
  # the smoke script checks that in package-lock.json. Third-party dependencies come from the registry.
  npm install --no-audit --no-fund --loglevel=error "$TARBALLS"/*.tgz
  # A missing or invalid dependency in the installed tree fails here.
  npm ls --all >/dev/null

  step "smoke test: import every package by name, one op per family on WebGPU"
  node release-smoke.mjs

  step "the webattn binary of @webattn/bench"
  # --no: use the installed binary, never fetch one; `--` keeps --version from going to npx itself.
  version="$(npx --no -- webattn --version)"
  expected="$(node -p 'require("@webattn/bench/package.json").version')"
  echo "webattn --version: $version"
  [ "$version" = "$expected" ] || { echo "webattn --version: expected $expected" >&2; exit 1; }
  npx --no -- webattn info
)

step "passed in $((SECONDS - start)) s"
