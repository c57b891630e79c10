#!/usr/bin/env bash
# Runs the reference (seedref.py, 2000 steps) once per benchmark pair and judges its output.
# Slow (15-45 min a pair on a 2-core CPU), so it runs in the background, one pair at a time, niced,
# with one torch thread; a pair whose judge.json exists is skipped, so the script can be re-run.
#   bash benchmarks/run_reference.sh [PAIR ...]     (default: every pair in benchmarks/pairs.txt)
# Each pair writes benchmarks/reference/<pair>/{seedref.log,log.json,judge.json,judge_<step>.json}
# (the images it writes there are not committed).
set -u
here=$(cd "$(dirname "$0")" && pwd)
shared=${STYLECORE_SHARED:-$here/../../shared}
py=${PYTHON:-python}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
pairs=("$@")
if [ ${#pairs[@]} -eq 0 ]; then
  mapfile -t pairs < <(grep -v '^#' "$here/pairs.txt" | awk 'NF {print $1}')
fi
for name in "${pairs[@]}"; do
  line=$(awk -v n="$name" '$1 == n' "$here/pairs.txt")
  content=$shared/images/$(echo "$line" | awk '{print $2}')
  style=$shared/images/$(echo "$line" | awk '{print $3}')
  dir=$here/reference/$name
  mkdir -p "$dir"
  [ -f "$dir/judge.json" ] && continue
  echo "$(date -Is) $name: seedref 2000 steps" >&2
  nice -n "${NICE:-10}" "$py" "$shared/bench/seedref.py" "$content" "$style" --steps 2000 --max-size 256 \
    --out "$dir/out.png" --snapshots 50,100,200,400,1000 --json "$dir/log.json" > "$dir/seedref.log" 2>&1 || exit 1
  for s in 50 100 200 400 1000; do
    nice -n "${NICE:-10}" "$py" "$shared/bench/judge.py" "$content" "$style" "$dir/out_$s.png" --max-size 256 > "$dir/judge_$s.json"
  done
  nice -n "${NICE:-10}" "$py" "$shared/bench/judge.py" "$content" "$style" "$dir/out.png" --max-size 256 > "$dir/judge.json.tmp" \
    && mv "$dir/judge.json.tmp" "$dir/judge.json"
  echo "$(date -Is) $name: done" >&2
done
