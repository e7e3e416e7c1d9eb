#!/usr/bin/env bash
# Erlang/OTP baseline for shared/bench/WORKLOADS.md.
#
# Copied from shared/bench/erlang/ (with bench.erl and tls_certs.sh), the harness behind
# shared/bench/ERLANG-BASELINE.md; Spore owns this copy. Only comments changed, not what it
# measures, and one recovery: W6 reconnects once more, untimed, when Erlang's global:sync()
# is stuck past its 10 s limit, instead of failing the run (see settle/2 in bench.erl). `cargo bench --bench workloads -- --compare` runs it twice after the Spore
# workloads (DIST=tcp and DIST=tls, the same PIN, a free EPMD_PORT); by hand:
#
# Usage:  tests/benches/erlang/run.sh [WORKLOAD...]        (default: all workloads)
#   e.g.  tests/benches/erlang/run.sh W2 W3
#         DIST=tls BENCH_ARGS="nW3b=8000" tests/benches/erlang/run.sh
#         BENCH_ARGS="reps=1 nW2=1000" tests/benches/erlang/run.sh W2   (quick smoke check)
# Needs erl, erlc and epmd (Debian: apt-get install -y erlang-nox), taskset, and openssl
# for DIST=tls.
# Environment:
#   BENCH_ARGS   extra driver options, e.g. "reps=1 nW2=1000" for a quick check
#   EPMD_PORT    private epmd port (default 14369); refuses to run if it is taken
#   DIST         tcp (default: plain Erlang distribution) or tls (mutual TLS
#                distribution, certificates made with openssl in a temp dir)
#   PIN          CPU placement (taskset), see WORKLOADS.md "CPU placement":
#                split (default): driver node on CPU 0, every other node on CPU 1
#                same:  every node on CPU 0
#                none:  no pinning, the OS decides (bimodal on a 2-vCPU VM)
#
# Prints one line per result on stdout ("W2 erlang p50_us=... ..."), raw
# per-repetition values on stderr. Everything runs on loopback: epmd listens on
# 127.0.0.1 only, nodes are named NAME@localhost and listen on 127.0.0.1 only.
# Every process it starts (epmd and all nodes) is stopped on exit, by pid.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
EPMD_PORT=${EPMD_PORT:-14369}
DIST=${DIST:-tcp}
PIN=${PIN:-split}
case $PIN in
    split) DRIVER_PRE=(taskset -c 0); PEER_PRE=(taskset -c 1);;
    same)  DRIVER_PRE=(taskset -c 0); PEER_PRE=(taskset -c 0);;
    none)  DRIVER_PRE=(); PEER_PRE=();;
    *) echo "PIN must be split, same or none" >&2; exit 2;;
esac
COOKIE=bench_cookie
WRONG_COOKIE=not_the_bench_cookie
HOST=localhost
BENCH_ARGS=${BENCH_ARGS:-}
ALL=(W1 W2 W3 W3b W4a W4b W5 W5b W6 W7 W7b)
if [ $# -gt 0 ]; then WANT=("$@"); else WANT=("${ALL[@]}"); fi

export ERL_EPMD_PORT=$EPMD_PORT ERL_EPMD_ADDRESS=127.0.0.1

WORK=$(mktemp -d)
PIDS=()      # nodes started by this script
EPMD_PID=""

cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ -n "$EPMD_PID" ]; then
        epmd -port "$EPMD_PORT" -kill >/dev/null 2>&1 || kill -TERM "$EPMD_PID" 2>/dev/null || true
        wait "$EPMD_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK/ebin"
erlc -o "$WORK/ebin" "$HERE"/*.erl

LABEL=erlang
DIST_FLAGS=(-kernel inet_dist_use_interface '{127,0,0,1}')
if [ "$DIST" = tls ]; then
    LABEL=erlang-tls
    "$HERE/tls_certs.sh" "$WORK/tls" >/dev/null
    DIST_FLAGS+=(-proto_dist inet_tls -ssl_dist_optfile "$WORK/tls/dist.conf")
fi

# Private epmd on loopback (child of this shell, so we reap it).
if epmd -port "$EPMD_PORT" -names >/dev/null 2>&1; then
    echo "an epmd is already listening on port $EPMD_PORT; set EPMD_PORT" >&2
    exit 1
fi
epmd -address 127.0.0.1 -port "$EPMD_PORT" >"$WORK/epmd.log" 2>&1 &
EPMD_PID=$!
for _ in $(seq 100); do epmd -port "$EPMD_PORT" -names >/dev/null 2>&1 && break; sleep 0.05; done

# start_node NAME COOKIE [extra erl flags...]  -> background node, pid recorded
start_node() {
    local name=$1 cookie=$2; shift 2
    "${PEER_PRE[@]}" erl -sname "$name@$HOST" -setcookie "$cookie" -noinput -pa "$WORK/ebin" \
        "${DIST_FLAGS[@]}" "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
}

wait_registered() {  # NAME...
    local n
    for n in "$@"; do
        for _ in $(seq 200); do
            epmd -port "$EPMD_PORT" -names 2>/dev/null | grep -q "^name $n at" && break
            sleep 0.05
        done
        epmd -port "$EPMD_PORT" -names | grep -q "^name $n at" || { echo "node $n did not start" >&2; cat "$WORK/$n.log" >&2; exit 1; }
    done
}

driver() {  # driver NAME ARGS...  (foreground; its stdout is the results)
    local name=$1; shift
    echo "# $(date +%T) driver $*" >&2
    # shellcheck disable=SC2086
    "${DRIVER_PRE[@]}" erl -sname "$name@$HOST" -setcookie "$COOKIE" -noinput -pa "$WORK/ebin" \
        "${DIST_FLAGS[@]}" +P 4000000 \
        -kernel logger '[{handler,default,logger_std_h,#{config=>#{type=>standard_error}}}]' \
        -run bench main impl=$LABEL pin=$PIN "$@" $BENCH_ARGS
}

MAIN=(); W6=0
for w in "${WANT[@]}"; do
    if [ "$w" = W6 ]; then W6=1; else MAIN+=("$w"); fi
done

echo "# $(erl -noinput -eval 'io:format("OTP ~s erts ~s", [erlang:system_info(otp_release), erlang:system_info(version)]), halt().') dist=$DIST pin=$PIN" >&2

if [ ${#MAIN[@]} -gt 0 ]; then
    start_node benchb "$COOKIE"
    wait_registered benchb
    # each workload in a fresh driver node, so one cannot disturb the next;
    # W5b gets a fresh peer too (module load cost grows with modules loaded)
    for w in "${MAIN[@]}"; do
        if [ "$w" = W5b ]; then
            start_node benchb5b "$COOKIE"
            wait_registered benchb5b
            driver bencha "peer=benchb5b@$HOST" "$w"
        else
            driver bencha "peer=benchb@$HOST" "$w"
        fi
    done
fi

if [ $W6 = 1 ]; then
    # 1 warm-up + 5 repetitions, each with its own never-contacted nodes:
    # benchfreshI has the right cookie, benchwrongI a different one; the
    # ...preI twins load all their code at boot (like an embedded release).
    REPS=5
    for a in $BENCH_ARGS; do case $a in reps=*) REPS=${a#reps=};; esac; done
    names=()
    for i in $(seq 0 "$REPS"); do
        for n in "benchfresh$i:$COOKIE:ready" "benchwrong$i:$WRONG_COOKIE:ready" \
                 "benchfreshpre$i:$COOKIE:preload" "benchwrongpre$i:$WRONG_COOKIE:preload"; do
            IFS=: read -r name cookie fun <<<"$n"
            start_node "$name" "$cookie" -run bench "$fun" "$WORK/$name.ready"
            names+=("$name")
        done
    done
    wait_registered "${names[@]}"
    for n in "${names[@]}"; do   # wait until each has finished booting/preloading
        for _ in $(seq 600); do [ -e "$WORK/$n.ready" ] && break; sleep 0.1; done
        [ -e "$WORK/$n.ready" ] || { echo "node $n not ready" >&2; cat "$WORK/$n.log" >&2; exit 1; }
    done
    sleep 1
    driver benchw6 fresh=benchfresh wrong=benchwrong W6
fi
