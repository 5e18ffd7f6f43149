#!/usr/bin/env bash
# `make docker-e2e`: build the images, bring up the compose federation (a coordinator,
# three sites, TLS and node auth), run the freq + hardy study from the analyst runner,
# compare its tables byte for byte with `genofed study run --simulation` on the same site
# directories, and tear everything down, also on failure.
#
# Then the coordinator is killed mid-study: a dp study (freq + a DP-SGD logistic model) is
# started from the runner, the coordinator container is killed (SIGKILL) after some of its
# rounds were charged, started again on its state volume, and the same study rerun: the
# first run must exit 6 (coordinator lost) telling the analyst to rerun, the rerun must be
# charged only for what the killed run had not released (the rest is replayed), and the
# same study on the simulation engine afterwards must give the same tables byte for byte
# without a further charge (every release a replay).
#
#   docker/e2e.sh              everything (needs root: apt-get, dockerd)
#   docker/e2e.sh prepare DIR  only write a deployment directory (synth, certs, configs)
#
# Environment:
#   GENOFED_BIN           the GenoFed virtualenv's bin directory (default .venv/bin)
#   GENOFED_BASE_IMAGE    base image for both builds; unset: python:3.11-slim-bookworm if it
#                         is present or can be pulled, else one built from Debian packages
#                         (docker/local-base.sh: mmdebstrap + docker import)
#   GENOFED_CA_DIR        extra CA certificates (*.crt) to build in (default: this host's
#                         /usr/local/share/ca-certificates, i.e. its local additions)
#   GENOFED_DEPLOY        deployment directory to use and keep (default: a temporary one,
#                         removed at the end unless GENOFED_KEEP=1)
#   GENOFED_WAIT_S        how long to wait for the sites to be healthy (default 240)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${GENOFED_BIN:-.venv/bin}"
UID_GID=10001:10001  # the images' unprivileged user (GENOFED_UID build argument)
PROJECT=genofed-e2e
COMPOSE=(docker-compose -p "$PROJECT" -f docker/compose.yml)
SITES=(a b c)
DEFAULT_BASE=python:3.11-slim-bookworm
LOCAL_BASE=genofed/base:bookworm-local
STUDY='[study]
name = "docker-e2e-freq-hardy"
on_variant_mismatch = "stop"

[[analysis]]
kind = "freq"

[[analysis]]
kind = "hardy"
midp = false
'
# The kill-the-coordinator study: dp counts (one charge) and a DP-SGD logistic model (one
# charge per round, and one for its noisy evaluation).
RESTART_STUDY='[study]
name = "docker-e2e-restart-dp"

[privacy]
mode = "dp"
epsilon = 5.0

[[analysis]]
kind = "freq"

[[analysis]]
kind = "train"
target = "DISEASE"
covariates = ["AGE", "SEX"]
covariate_ranges = [[0, 100], [0, 1]]
model = "logistic"
rounds = 3
noise_multiplier = 1.0
'
KILL_AFTER_ROUNDS=2  # train rounds done (and charged) before the coordinator is killed
RUNNER_ARGS=(--superlink 127.0.0.1:9093 --ca-cert /etc/genofed/tls/ca.pem --sites 3)

say() { printf '[docker-e2e %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# --- a deployment directory: what docker/compose.yml mounts -------------------------
prepare() {
  local dir="$1" s
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  [ -z "$(ls -A "$dir")" ] || die "$dir is not empty"
  "$BIN/genofed" synth --sites 3 --samples 300 --variants 200 --seed 7 --out "$dir/cohorts" >/dev/null
  "$BIN/genofed" certs init --out "$dir/certs" --coordinator-host coordinator \
    --sites "$(IFS=,; echo "${SITES[*]}")" >/dev/null
  local coord="$dir/coordinator"
  mkdir -p "$coord/tls" "$coord/keys" "$coord/nodes" "$dir/study" "$dir/results"
  cp "$dir/certs/ca.pem" "$dir/certs/server.pem" "$dir/certs/server.key" "$coord/tls/"
  {
    printf '[coordinator]\nfleet_address = "0.0.0.0:9092"\ncontrol_address = "127.0.0.1:9093"\n'
    printf 'state_dir = "/var/lib/genofed/state"\n\n'
    printf '[tls]\nca_cert = "tls/ca.pem"\nserver_cert = "tls/server.pem"\nserver_key = "tls/server.key"\n\n'
    printf '[receipts]\nmode = "require"\n\n[receipts.audit_keys]\n'
    for s in "${SITES[@]}"; do printf 'site-%s = "keys/site-%s.audit.pub"\n' "$s" "$s"; done
  } > "$coord/coordinator.toml"
  for s in "${SITES[@]}"; do
    # the privacy officer hands over the audit key; IT the node public key
    cp "$dir/cohorts/site-$s/state/audit.pub" "$coord/keys/site-$s.audit.pub"
    cp "$dir/certs/sites/$s/node.pub" "$coord/nodes/site-$s.pub"
    install -d -m 0700 "$dir/cohorts/site-$s/keys"
    install -m 0600 "$dir/certs/sites/$s/node.key" "$dir/cohorts/site-$s/keys/node.key"
  done
  printf '%s' "$STUDY" > "$dir/study/study.toml"
  printf '%s' "$RESTART_STUDY" > "$dir/study/restart.toml"
  # the containers' user owns what they read and write; certs/ (with the CA key) stays root's
  chown -R "$UID_GID" "$coord" "$dir/results" "$dir/cohorts"/site-*
  say "deployment directory: $dir"
}

if [ "${1:-}" = prepare ]; then
  [ $# -eq 2 ] || die "usage: docker/e2e.sh prepare DIR"
  prepare "$2"
  exit 0
fi

# --- the whole cycle -----------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "run as root (it installs packages with apt-get and starts dockerd)"
[ -x "$BIN/genofed" ] || die "$BIN/genofed not found; run make venv (or set GENOFED_BIN)"
started=$(date +%s)
work="$(mktemp -d /tmp/genofed-docker-e2e.XXXXXX)"
DOCKERD_PID=""
UP=""
KEEP_DEPLOY="${GENOFED_DEPLOY:+1}"  # a directory the caller named is kept
DEPLOY="${GENOFED_DEPLOY:-$work/deploy}"

cleanup() {
  local code=$?
  set +e
  if [ -n "$UP" ]; then
    if [ "$code" != 0 ]; then
      say "failed; the federation's state and last log lines:"
      "${COMPOSE[@]}" ps >&2
      "${COMPOSE[@]}" logs --no-color --tail=40 >&2
    fi
    "${COMPOSE[@]}" down -v --remove-orphans >/dev/null 2>&1 && say "federation down"
  fi
  if [ -n "$DOCKERD_PID" ]; then
    kill "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 60); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
    say "dockerd (pid $DOCKERD_PID, started by this run) stopped"
  fi
  if [ -z "$KEEP_DEPLOY" ] && [ "${GENOFED_KEEP:-0}" != 1 ]; then
    rm -rf "$work"
  else
    say "kept: $DEPLOY (logs in $work)"
  fi
  say "$([ "$code" = 0 ] && echo PASSED || echo FAILED) in $(( $(date +%s) - started )) s"
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. the container engine
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  dockerd --storage-driver=overlay2 >"$work/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || die "dockerd did not start; see $work/dockerd.log"
  say "dockerd started (pid $DOCKERD_PID)"
fi

# 2. build inputs: base image, extra CA certificates, the torch CPU wheel
base="${GENOFED_BASE_IMAGE:-}"
if [ -z "$base" ]; then
  if docker image inspect "$DEFAULT_BASE" >/dev/null 2>&1 \
     || timeout 120 docker pull -q "$DEFAULT_BASE" >/dev/null 2>&1; then
    base="$DEFAULT_BASE"
  elif docker image inspect "$LOCAL_BASE" >/dev/null 2>&1; then
    base="$LOCAL_BASE"
    say "no image registry; reusing the Debian-built base $base"
  else
    say "no image registry; building a base image from Debian packages"
    base="$(docker/local-base.sh "$LOCAL_BASE")"
  fi
fi
ca_dir="${GENOFED_CA_DIR:-/usr/local/share/ca-certificates}"
find docker/ca-certificates -name '*.crt' -delete
if compgen -G "$ca_dir/*.crt" >/dev/null; then cp "$ca_dir"/*.crt docker/ca-certificates/; fi
torch="$("$BIN/python" docker/requirements.py pyproject.toml "$work" train >/dev/null && sed -n 's/^torch==//p' "$work/constraints.txt")"
wheel=""
for d in $("$BIN/python" -m pip config list 2>/dev/null | sed -n "s/.*find-links='\(.*\)'/\1/p") ${PIP_FIND_LINKS:-}; do
  for w in "$d"/torch-"$torch"-cp311-*.whl; do [ -f "$w" ] && wheel="$w" && break 2; done
done
find docker/wheels -name 'torch-*.whl' ! -name "torch-$torch-*" -delete
if [ -n "$wheel" ]; then
  cmp -s "$wheel" "docker/wheels/$(basename "$wheel")" || cp "$wheel" docker/wheels/
  say "torch wheel: $wheel"
else
  say "no local torch $torch wheel in pip's find-links: the build takes it from PyTorch's CPU index"
fi
export GENOFED_BASE_IMAGE="$base" GENOFED_DEPLOY="$DEPLOY"

# 3. images (the build cache makes a rebuild after a code change take seconds)
say "building images on $base"
t=$(date +%s)
# the site image (no PyTorch), then the compose file's: the site-train image on top of it
docker build -q -f docker/site.Dockerfile -t genofed/site:dev --build-arg BASE_IMAGE="$base" \
  --build-arg EXTRA_CA_CERTS=docker/ca-certificates . >/dev/null
"${COMPOSE[@]}" build -q coordinator site-a
docker run --rm --entrypoint python genofed/site-train:dev -c 'import torch, opacus' \
  || die "the site-train image cannot import torch and opacus"
docker run --rm --entrypoint python genofed/site:dev \
  -c 'import importlib.util as u, sys; sys.exit(u.find_spec("torch") is not None)' \
  || die "the site image has torch in it"
# the images these builds replaced (untagged now; only GenoFed's, by their label)
docker image prune -f --filter label=org.genofed.image >/dev/null
size() { docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$1"; }
say "images built in $(( $(date +%s) - t )) s: $(size genofed/coordinator:dev) / $(size genofed/site:dev) / $(size genofed/site-train:dev)"

# 4. the federation
prepare "$DEPLOY"
UP=1
t=$(date +%s)
"${COMPOSE[@]}" up -d --no-build coordinator register-sites site-a site-b site-c
deadline=$(( $(date +%s) + ${GENOFED_WAIT_S:-240} ))
for s in "${SITES[@]}"; do
  while :; do
    health="$(docker inspect -f '{{.State.Health.Status}}' "$("${COMPOSE[@]}" ps -q "site-$s")" 2>/dev/null || echo missing)"
    [ "$health" = healthy ] && break
    [ "$(date +%s)" -lt "$deadline" ] || die "site-$s is $health after ${GENOFED_WAIT_S:-240} s"
    sleep 2
  done
done
say "coordinator and three sites healthy in $(( $(date +%s) - t )) s"

# 5. the study, from the runner
t=$(date +%s)
"${COMPOSE[@]}" run --rm --no-deps -T runner
say "study over gRPC finished in $(( $(date +%s) - t )) s"

# 5b. kill the coordinator mid-study, start it again, rerun the same study
ledgers() {  # "site-a=N site-b=N site-c=N": charges in each site's privacy ledger
  "$BIN/python" - "$DEPLOY/cohorts" <<'PY'
import sqlite3, sys
from pathlib import Path
out = []
for site in ("site-a", "site-b", "site-c"):
    path = Path(sys.argv[1]) / site / "state" / "ledger.sqlite"
    n = 0
    if path.is_file():  # no dp release yet: no ledger (read-only: never create one)
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'charges'").fetchone():
            n = db.execute("SELECT COUNT(*) FROM charges").fetchone()[0]
        db.close()
    out.append(f"{site}={n}")
print(" ".join(out))
PY
}
t=$(date +%s)
before="$(ledgers)"
killed=""
# the runner's plain progress lines come as they happen; kill after KILL_AFTER_ROUNDS train rounds
set +e
"${COMPOSE[@]}" run --rm --no-deps -T runner study run /study/restart.toml "${RUNNER_ARGS[@]}" \
  --out /results/restart 2>&1 | {
  rounds=0
  while IFS= read -r line; do
    printf '%s\n' "$line" >>"$work/restart-killed.out"
    case "$line" in *"train: round "*) rounds=$((rounds + 1)) ;; esac
    if [ -z "$killed" ] && [ "$rounds" -ge "$KILL_AFTER_ROUNDS" ]; then
      docker kill -s KILL "$("${COMPOSE[@]}" ps -q coordinator)" >/dev/null && killed=1
      say "coordinator container killed (SIGKILL) after $rounds train rounds"
    fi
  done
}
code=${PIPESTATUS[0]}
set -e
[ "$code" = 6 ] || { cat "$work/restart-killed.out" >&2; die "the killed run exited $code (expected 6: coordinator lost)"; }
tr -s ' \n' ' ' <"$work/restart-killed.out" | grep -q "lost mid-study after round $KILL_AFTER_ROUNDS of train" \
  || { cat "$work/restart-killed.out" >&2; die "the killed run did not say how far the study got"; }
tr -s ' \n' ' ' <"$work/restart-killed.out" | grep -q "run the same study again" \
  || { cat "$work/restart-killed.out" >&2; die "the killed run did not tell the analyst to rerun"; }
[ ! -e "$DEPLOY/results/restart" ] || die "the killed run left results in $DEPLOY/results/restart"
charged="$(ledgers)"
say "killed run exited 6 and said to rerun; ledgers before: $before, after the killed run: $charged"
"${COMPOSE[@]}" start coordinator >/dev/null
deadline=$(( $(date +%s) + ${GENOFED_WAIT_S:-240} ))
until [ "$(docker inspect -f '{{.State.Health.Status}}' "$("${COMPOSE[@]}" ps -q coordinator)")" = healthy ]; do
  [ "$(date +%s)" -lt "$deadline" ] || die "the restarted coordinator is not healthy after ${GENOFED_WAIT_S:-240} s"
  sleep 2
done
say "coordinator started again on its state volume, healthy in $(( $(date +%s) - t )) s since the kill run began"
"${COMPOSE[@]}" run --rm --no-deps -T runner study run /study/restart.toml "${RUNNER_ARGS[@]}" \
  --out /results/restart >"$work/restart-rerun.out" 2>&1 \
  || { cat "$work/restart-rerun.out" >&2; die "the rerun after the restart failed"; }
rerun="$(ledgers)"
"$BIN/python" - "$DEPLOY/results/restart/provenance.json" "$before" "$charged" "$rerun" <<'PY' \
  || die "the rerun charged a site twice for the same release"
import json, sys
doc = json.load(open(sys.argv[1]))
count = [dict(kv.split("=") for kv in arg.split()) for arg in sys.argv[2:5]]
for site in doc["sites"]:
    name, releases = site["name"], site["releases"]
    replayed = [r for r in releases if "replay_of_audit_index" in r]
    fresh = [r for r in releases if float(r.get("epsilon_charged", 0.0)) > 0]
    # the ledger read just after the kill may miss a round the site was still charging, so
    # the invariant is over both runs: every charge is one release of the rerun, either
    # replayed (charged by the killed run) or fresh (charged by the rerun)
    killed = int(count[1][name]) - int(count[0][name])
    total = int(count[2][name]) - int(count[0][name])
    assert killed >= 1 + 2, (name, killed)  # freq and two train rounds before the kill
    assert len(replayed) >= killed, (name, len(replayed), killed)
    assert total == len(replayed) + len(fresh), (name, total, len(replayed), len(fresh))
    assert not any(r in fresh for r in replayed), name
PY
say "coordinator kill and rerun in $(( $(date +%s) - t )) s: each release charged once (ledgers $before -> $charged -> $rerun)"

# SIGTERM (through the containers' init) stops the agents and the coordinator cleanly
t=$(date +%s)
"${COMPOSE[@]}" stop -t 30 coordinator site-a site-b site-c >/dev/null 2>&1
for svc in coordinator site-a site-b site-c; do
  code="$(docker inspect -f '{{.State.ExitCode}}' "$("${COMPOSE[@]}" ps -q "$svc")")"
  [ "$code" = 0 ] || die "$svc exited with code $code on SIGTERM (expected 0: stopped on request)"
done
say "coordinator and sites stopped on SIGTERM with exit code 0 in $(( $(date +%s) - t )) s"
"${COMPOSE[@]}" down -v --remove-orphans >/dev/null 2>&1
UP=""
say "federation down"

# 6. the same study on the simulation engine, on the same site directories
t=$(date +%s)
"$BIN/genofed" study run "$DEPLOY/study/study.toml" --simulation --out "$DEPLOY/results/simulation" \
  $(for s in "${SITES[@]}"; do printf -- '--site %s ' "$DEPLOY/cohorts/site-$s"; done) >"$work/simulation.out" 2>&1 \
  || { cat "$work/simulation.out" >&2; die "the simulation run failed"; }
say "simulation run finished in $(( $(date +%s) - t )) s"

# the kill-and-rerun study on the simulation engine: every release a replay, the same tables
t=$(date +%s)
"$BIN/genofed" study run "$DEPLOY/study/restart.toml" --simulation --out "$DEPLOY/results/restart-simulation" \
  $(for s in "${SITES[@]}"; do printf -- '--site %s ' "$DEPLOY/cohorts/site-$s"; done) >"$work/restart-simulation.out" 2>&1 \
  || { cat "$work/restart-simulation.out" >&2; die "the simulation run of the restart study failed"; }
[ "$(ledgers)" = "$rerun" ] || die "the simulation of the restart study charged again: $rerun -> $(ledgers)"
for f in freq.afreq model.pt train.calibration.tsv; do
  cmp "$DEPLOY/results/restart/$f" "$DEPLOY/results/restart-simulation/$f" >&2 \
    || die "$f of the rerun after the coordinator kill differs from the simulation"
done
say "restart study on the simulation engine in $(( $(date +%s) - t )) s: same tables, no new charge"

# 7. compare
deployed="$DEPLOY/results/deployed" simulated="$DEPLOY/results/simulation"
[ "$(ls "$deployed")" = "$(ls "$simulated")" ] \
  || die "different result files: deployed [$(ls "$deployed" | xargs)] simulation [$(ls "$simulated" | xargs)]"
for f in freq.afreq hardy.hardy; do [ -f "$deployed/$f" ] || die "no $f in the deployed results"; done
n=0
for f in "$deployed"/*; do
  name="$(basename "$f")"
  case "$name" in provenance.json|report.html) continue ;; esac  # run id, engine, times
  cmp "$f" "$simulated/$name" >&2 || die "$name differs between the deployed and the simulation run"
  n=$((n + 1))
done
"$BIN/python" - "$deployed/provenance.json" <<'PY' || die "provenance.json of the deployed run is not as expected"
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["run"]["engine"] == "deployment", doc["run"]
sites = sorted(s["name"] for s in doc["sites"])
assert sites == ["site-a", "site-b", "site-c"], sites
checks = {r["receipt"]["receipt_check"] for s in doc["sites"] for r in s["releases"]}
assert checks == {"verified"}, checks
PY
say "$n result tables identical byte for byte ($(ls "$deployed" | grep -v -e provenance.json -e report.html | xargs)); every receipt verified"
