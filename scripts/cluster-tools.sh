#!/usr/bin/env bash
# Build the live test cluster's binaries from Go modules into .cache/bin, cached by fingerprint.
#
#   scripts/cluster-tools.sh cluster   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok
#   scripts/cluster-tools.sh pulumi    the Pulumi CLI, a Python language host, the Kubernetes provider
#   scripts/cluster-tools.sh all       both
#
# Each tool is a small module under tools/<name> (several upstream modules carry replace directives
# that `go install mod@version` refuses). Cold builds take ~40 min on 2 cores; a rerun with nothing
# changed takes a second, a relink after a change about a minute. The Pulumi builds serve the kit's
# own tests: users install the Pulumi CLI the normal way (README).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/.cache/bin
STAGES=$ROOT/.cache/kwok-stages
export GOFLAGS=-mod=mod
mkdir -p "$BIN"

say() { printf '==> %s\n' "$*"; }
need() {
  command -v "$1" >/dev/null 2>&1 && return
  printf 'mlkit cluster-tools: `%s` was not found on PATH.\n  %s\n' "$1" "$2" >&2
  exit 1
}
# version of a module the tool's go.mod requires
module_version() { (cd "tools/$1" && go list -m -f '{{.Version}}' "$2"); }
# (downloaded first: on a machine whose module cache lacks it, `go list` prints an empty Dir)
module_dir() { (cd "tools/$1" && go mod download "$2" && go list -m -f '{{.Dir}}' "$2"); }
fingerprint() { cat "tools/$1"/go.mod "tools/$1"/go.sum "$0" "${@:2}" | sha256sum | cut -c1-16; }

# build TOOL OUTPUT... -- GO-BUILD-ARGS: skips when every output exists and the stamp matches.
build() {
  local tool=$1 outputs=() stamp
  shift
  while [[ $1 != -- ]]; do outputs+=("$1"); shift; done
  shift
  stamp=$(fingerprint "$tool")
  local fresh=1
  for out in "${outputs[@]}"; do
    [[ -x "$BIN/$out" ]] || fresh=0
  done
  [[ $fresh == 1 && "$(cat "$BIN/.$tool.stamp" 2>/dev/null)" == "$stamp" ]] && return 0
  say "go build ${outputs[*]} (tools/$tool; cold builds take minutes)"
  (cd "tools/$tool" && go build "$@")
  echo "$stamp" >"$BIN/.$tool.stamp"
}

cluster() {
  local kube
  kube=$(module_version kubernetes k8s.io/kubernetes)
  local minor=${kube#v1.}
  minor=${minor%%.*}
  build kubernetes kube-apiserver kube-controller-manager kube-scheduler kubectl -- -o "$BIN/" \
    -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$kube -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
  build etcd etcd -- -o "$BIN/etcd" -ldflags "-s -w" .
  build kwok kwok -- -o "$BIN/kwok" -ldflags "-s -w" sigs.k8s.io/kwok/cmd/kwok
  # kwok's node and pod lifecycles ship as Stage objects in its module, not in the binary.
  local kwok_dir
  kwok_dir=$(module_dir kwok sigs.k8s.io/kwok)
  rm -rf "$STAGES" && mkdir -p "$STAGES"
  for stage in "$kwok_dir"/kustomize/stage/{node,pod,volume}/fast/*.yaml; do
    [[ $(basename "$stage") == kustomization.yaml ]] || install -m 0644 "$stage" "$STAGES/"
  done
}

pulumi() {
  local cli provider
  cli=$(module_version pulumi github.com/pulumi/pulumi/pkg/v3)
  build pulumi pulumi -- -o "$BIN/pulumi" \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$cli" \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi

  build pulumi-language-python pulumi-language-python -- -o "$BIN/pulumi-language-python" \
    -ldflags "-s -w" github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python
  # The host runs programs through this shim, which ships with the SDK at the CLI's version.
  install -m 0755 "$(module_dir pulumi github.com/pulumi/pulumi/sdk/v3)/python/cmd/pulumi-language-python-exec" "$BIN/"

  # The provider reports the version of the Python SDK the kit pins, so the engine pairs them.
  provider=$(sed -n 's/^pulumi-kubernetes==//p' requirements/infra.lock)
  local src gen=tools/pulumi-kubernetes
  src=$(module_dir pulumi-kubernetes github.com/pulumi/pulumi-kubernetes/provider/v4)/cmd/pulumi-resource-kubernetes
  python3 - "$src" "$gen" "$provider" <<'PY'
import json, sys
src, gen, version = sys.argv[1:]
schema = json.load(open(f"{src}/schema.json"))
schema["version"] = version
json.dump(schema, open(f"{gen}/schema-embed.json", "w"), separators=(",", ":"))
mapping = json.load(open(f"{src}/terraform-mapping.json"))
json.dump(mapping, open(f"{gen}/terraform-mapping-embed.json", "w"), separators=(",", ":"))
PY
  build pulumi-kubernetes pulumi-resource-kubernetes -- -o "$BIN/pulumi-resource-kubernetes" \
    -ldflags "-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$provider" .
}

need go "Install Go 1.26 or newer (https://go.dev/doc/install)."
need python3 "Install Python 3."
case "${1:-all}" in
  cluster) cluster ;;
  pulumi) pulumi ;;
  all) cluster; pulumi ;;
  *) echo "usage: $0 [cluster|pulumi|all]" >&2 && exit 2 ;;
esac
