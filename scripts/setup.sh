#!/usr/bin/env bash
# Install everything the tests and the demo need, pinned and cached. Idempotent: a rerun with
# nothing changed takes seconds. Called by `make setup`; safe to run by hand.
#
#   requirements/<env>.lock  -> .venv/<env>   (one Python environment per conflicting dependency set)
#   requirements/go-tools.txt -> .cache/bin   (helm, kubeconform, built with `go install`)
#   requirements/jars/pom.xml -> .cache/jars  (the Hudi Spark bundle, Hadoop 3.4 and its connectors, fetched with Maven)
#                             -> .cache/spark (a SPARK_HOME: pyspark's files with those jars in place of
#                                              replaces-spark.txt's, the feature image's classpath)
#   requirements/npm/         -> .cache/npm  (Azurite, the Azure Storage emulator the tests start; npm ci)
#   requirements/apt.txt      -> Debian packages whose command is missing (Java for Spark, Maven)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=$ROOT/.cache
UV_VERSION=0.13.8
PYTHON=${PYTHON:-python3.11}

say() { printf '==> %s\n' "$*"; }
need() {
  command -v "$1" >/dev/null 2>&1 && return
  printf 'mlkit setup: `%s` was not found on PATH.\n  %s\n' "$1" "$2" >&2
  exit 1
}
fingerprint() { cat "$@" | sha256sum | cut -c1-16; }

missing_packages=()
while read -r command package; do
  [[ -z "$command" || "$command" == \#* ]] && continue
  command -v "$command" >/dev/null 2>&1 || missing_packages+=("$package")
done <requirements/apt.txt
if ((${#missing_packages[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "apt-get install ${missing_packages[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing_packages[@]}" >/dev/null
  else
    printf 'mlkit setup: install these packages first (as root): apt-get install %s\n' "${missing_packages[*]}" >&2
    exit 1
  fi
fi

need "$PYTHON" "Install Python 3.11 (Debian/Ubuntu: apt-get install python3.11 python3.11-venv; macOS: brew install python@3.11), or set PYTHON=/path/to/python3.11."
need go "Install Go 1.22 or newer (https://go.dev/doc/install); setup builds helm and kubeconform with it."

# uv installs and resolves the locked environments; pinned, in its own small venv.
if [[ "$("$CACHE/uv/bin/uv" --version 2>/dev/null)" != "uv $UV_VERSION"* ]]; then
  say "uv $UV_VERSION"
  "$PYTHON" -m venv --clear "$CACHE/uv"
  "$CACHE/uv/bin/pip" install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
UV=$CACHE/uv/bin/uv
export UV_LINK_MODE=copy  # the uv cache may sit on another filesystem

for lock in requirements/*.lock; do
  env=$(basename "$lock" .lock)
  [[ $env == evidently ]] && continue  # the drift benchmark's peer only: bench_drift.py builds it on demand
  venv=.venv/$env
  stamp=$(fingerprint "$lock" pyproject.toml)
  [[ "$(cat "$venv/.mlkit-stamp" 2>/dev/null)" == "$stamp" ]] && continue
  say "python environment $venv ($lock)"
  "$UV" venv --quiet --allow-existing --python "$PYTHON" "$venv"
  "$UV" pip sync --quiet --python "$venv/bin/python" "$lock"
  "$UV" pip install --quiet --python "$venv/bin/python" --no-deps --editable .
  echo "$stamp" >"$venv/.mlkit-stamp"
done

mkdir -p "$CACHE/bin"
while read -r name module; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  [[ -x "$CACHE/bin/$name" && "$(cat "$CACHE/bin/.$name.version" 2>/dev/null)" == "$module" ]] && continue
  say "go install $module"
  GOBIN=$CACHE/bin go install "$module"
  echo "$module" >"$CACHE/bin/.$name.version"
done <requirements/go-tools.txt

stamp=$(fingerprint requirements/jars/pom.xml)
if [[ "$(cat "$CACHE/jars/.mlkit-stamp" 2>/dev/null)" != "$stamp" ]]; then
  say "maven: Spark jars into .cache/jars"
  rm -rf "$CACHE/jars"
  mvn --batch-mode --quiet -f requirements/jars/pom.xml dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$CACHE/jars"
  echo "$stamp" >"$CACHE/jars/.mlkit-stamp"
fi

pyspark=$("$ROOT/.venv/workloads/bin/python" -c 'import pathlib, pyspark; print(pathlib.Path(pyspark.__file__).parent)')
stamp=$(fingerprint requirements/jars/pom.xml requirements/jars/replaces-spark.txt <(echo "$pyspark") "$pyspark/version.py")
if [[ "$(cat "$CACHE/spark/.mlkit-stamp" 2>/dev/null)" != "$stamp" ]]; then
  say "spark: .cache/spark (pyspark with the jars of requirements/jars)"
  rm -rf "$CACHE/spark"
  mkdir -p "$CACHE/spark/jars"
  for entry in "$pyspark"/*; do
    [[ $(basename "$entry") == jars ]] || ln -s "$entry" "$CACHE/spark/"
  done
  replaced=$(grep -v '^#' requirements/jars/replaces-spark.txt)
  for jar in "$pyspark"/jars/*.jar; do
    grep -qxF "$(basename "$jar")" <<<"$replaced" || ln -s "$jar" "$CACHE/spark/jars/"
  done
  ln -s "$CACHE"/jars/*.jar "$CACHE/spark/jars/"
  echo "$stamp" >"$CACHE/spark/.mlkit-stamp"
fi

stamp=$(fingerprint requirements/npm/package-lock.json)
if [[ "$(cat "$CACHE/npm/.mlkit-stamp" 2>/dev/null)" != "$stamp" ]]; then
  need npm "Install Node.js 20 or newer with npm (Debian/Ubuntu: apt-get install nodejs npm); the tests run Azurite with it."
  say "npm ci: Azurite into .cache/npm"
  mkdir -p "$CACHE/npm"
  cp requirements/npm/package.json requirements/npm/package-lock.json "$CACHE/npm/"
  (cd "$CACHE/npm" && npm ci --no-audit --no-fund --silent)
  echo "$stamp" >"$CACHE/npm/.mlkit-stamp"
fi

say "setup complete"
