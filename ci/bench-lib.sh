# Shared by ci/bench.sh and ci/bench-scale.sh (sourced, not run): cleanup of
# the processes they start, and reading the generator's JSON summary.

# Processes to stop on exit: the scripts append their pids.
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT INT TERM

# A field of a flat JSON object: json_field NAME < line
json_field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^,}\"]*\).*/\1/p"; }
# What other processes used while a bench run measured: "others / capacity" CPU s.
others() {
  awk -v m="$(json_field machine_cpu_s <<<"$1")" -v c="$(json_field cpu_s <<<"$1")" \
    -v s="$(json_field server_cpu_s <<<"$1")" -v cap="$(json_field machine_capacity_s <<<"$1")" \
    'BEGIN { o = m - c - s; if (o < 0) o = 0; printf "%.1f / %.0f", o, cap }'
}
# Waits (at most $3 s) until file $1 has a line matching $2.
wait_line() {
  local deadline=$((SECONDS + $3))
  until grep -q "$2" "$1" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      echo "timed out waiting for '$2' in $1" >&2
      cat "$1" >&2 || true
      exit 1
    fi
    sleep 0.05
  done
}
