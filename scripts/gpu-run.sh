#!/usr/bin/env bash
# The GPU figures of the book (chapter 13, and chapter 7's gpu preset), measured in one go.
#
#   MINIGPT_DATA=path/to/tinyshakespeare.txt scripts/gpu-run.sh [OUT]
#
# Everything lands in OUT (default: gpu-results): one log per step, the runs' metrics, loss
# curves and samples, the figures as JSON, the ladder's table, steps.tsv (each step's status
# and seconds), and at the end summary.md and summary.json.
#
# Environment:
#   MINIGPT_DATA        Tiny Shakespeare, as a file (required: the script downloads nothing)
#   PYTHON              an interpreter that has minigpt's dependencies (default: python3)
#   BUDGET              seconds for all the steps together (default 460, under 8 minutes);
#                       each step gets at most what is left, the later ones are skipped
#   TIKTOKEN_CACHE_DIR  GPT-2's tokenizer files, which the stage-3 step needs offline
#   STAGE3=0            leave the stage-3 step out
#   KEEP_CKPT=1         keep the runs' checkpoints (removed at the end otherwise: 130 MB)
#   SMALL=1             every step at toy sizes, on the CPU, in under a minute (the tests')
set -euo pipefail

out=${1:-gpu-results}
py=${PYTHON:-python3}
small=${SMALL:-0}
budget=${BUDGET:-460}
: "${MINIGPT_DATA:?set MINIGPT_DATA to the Tiny Shakespeare text file}"
if [[ ! -f $MINIGPT_DATA ]]; then
    echo "gpu-run.sh: MINIGPT_DATA=$MINIGPT_DATA is not a file" >&2
    exit 2
fi
MINIGPT_DATA=$(cd "$(dirname "$MINIGPT_DATA")" && pwd)/$(basename "$MINIGPT_DATA")
export MINIGPT_DATA PYTHONUNBUFFERED=1
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."  # the repository root, where `python -m minigpt` finds the package
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

if [[ $small == 1 ]]; then  # toy sizes: every step runs, on the CPU, in seconds
    budget=${BUDGET:-150}
    model=(n_layer=1 n_head=1 n_embd=16 block_size=16 batch_size=4 device=cpu compile=false)
    to_target=(lr=1e-2 warmup_iters=5 max_iters=60 eval_interval=10 eval_iters=2
               sample_tokens=20 target_loss=3.3)
    bench_time=(--steps 2)
    peak=(--device cpu --size 128)
    gpt2=(--stage random vocab_size=300 "${model[@]}" --steps 2 --rounds 2 --skip compile)
    generate=(--new-tokens 20)
    prepare=(--tokenizer bpe:300 --max-bytes 30KB --num-proc 1)
    corpus_run=("${model[@]}" max_iters=10 eval_interval=5 eval_iters=2 sample_tokens=0)
    sample_chars=50
else
    model=()
    to_target=(target_loss=1.4697)  # nanoGPT's validation loss for the same recipe
    bench_time=(--seconds 15)
    peak=()
    gpt2=(--stage random vocab_size=50257 n_layer=12 n_head=12 n_embd=768 block_size=1024
          batch_size=8 dropout=0 --seconds 4)
    generate=(--new-tokens 1000)
    prepare=(--tokenizer gpt2 --max-bytes 20MB)
    corpus_run=(max_time=60)
    sample_chars=500
fi

steps="$out/steps.tsv"
printf 'step\tstatus\tseconds\tkind\n' > "$steps"
deadline=$((SECONDS + budget))
failed=0

# step NAME LIMIT required|optional COMMAND...: run COMMAND for at most LIMIT seconds (or what
# is left of the budget), its output in OUT/NAME.log; record how it ended and how long it
# took. A failed step does not stop the others; a failed required step fails the script.
step() {
    local name=$1 limit=$2 kind=$3 start=$SECONDS rc status
    shift 3
    local left=$((deadline - SECONDS))
    ((limit > left)) && limit=$left
    if ((limit < 5)); then
        printf '%s\t%s\t0\t%s\n' "$name" "skipped: no time left" "$kind" >> "$steps"
        echo "== $name: skipped, no time left"
        return 0
    fi
    echo "== $name (at most ${limit}s): $*" | tee "$out/$name.log"
    set +e
    timeout -k 20 "$limit" "$@" >> "$out/$name.log" 2>&1
    rc=$?
    set -e
    case $rc in
        0) status=ok ;;
        124 | 137) status="timed out after ${limit}s" ;;
        *) status="failed (exit $rc)" ;;
    esac
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - start))" "$kind" >> "$steps"
    echo "   $status, $((SECONDS - start))s"
    if [[ $status != ok && $kind == required ]]; then
        failed=1
    fi
    return 0
}

minigpt=("$py" -m minigpt)

step env 60 required "$py" -c '
import os, platform, sys, torch
print("python", platform.python_version(), "torch", torch.__version__, "on", platform.node())
print("cpu cores", os.cpu_count(), "torch threads", torch.get_num_threads())
if torch.cuda.is_available():
    print("cuda", torch.version.cuda, "device", torch.cuda.get_device_name(0))
else:
    print("no CUDA GPU")
'
if command -v nvidia-smi > /dev/null; then
    step nvidia-smi 20 optional nvidia-smi
fi
step peak 60 required "${minigpt[@]}" bench peak "${peak[@]}"
step train-gpu 240 required "${minigpt[@]}" train --preset gpu --data "$MINIGPT_DATA" \
    --out "$out/gpu-run" --overwrite "${model[@]}" "${to_target[@]}"
step bench-train-gpu 90 required "${minigpt[@]}" bench train --preset gpu \
    --data "$MINIGPT_DATA" "${bench_time[@]}" --json "$out/bench-train-gpu.json" "${model[@]}"
step ladder-gpt2 200 required "${minigpt[@]}" bench ladder --preset gpu "${gpt2[@]}" \
    --json "$out/ladder-gpt2.json"
grep '^|' "$out/ladder-gpt2.log" > "$out/ladder-gpt2.md" || true
step generate 60 optional "${minigpt[@]}" bench generate --preset gpu "${generate[@]}"
if [[ -f $out/gpu-run/ckpt.pt ]]; then
    step sample 30 optional "${minigpt[@]}" sample --run "$out/gpu-run" --prompt "ROMEO:" \
        --max-new-tokens "$sample_chars" --seed 1
fi
if [[ ${STAGE3:-1} != 0 ]]; then
    step stage3-prepare 60 optional "${minigpt[@]}" prepare --dataset python-stdlib \
        "${prepare[@]}" --out "$scratch/stdlib"
    if [[ -f $scratch/stdlib/meta.json ]]; then
        step stage3-train 90 optional "${minigpt[@]}" train --stage corpus \
            --data-dir "$scratch/stdlib" --preset gpu --out "$out/stdlib-run" --overwrite \
            "${corpus_run[@]}"
    fi
fi
if [[ ${KEEP_CKPT:-0} != 1 ]]; then
    rm -f "$out"/*/ckpt.pt
fi

# The summary: every step's status, and the figures the book cites, in Markdown and JSON.
"$py" - "$out" <<'PY'
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])


def read_json(name):
    path = out / name
    return json.loads(path.read_text()) if path.is_file() else None


def rate(flops):
    for unit, scale in (("PFLOP/s", 1e15), ("TFLOP/s", 1e12), ("GFLOP/s", 1e9)):
        if flops >= scale:
            return f"{flops / scale:,.4g} {unit}"
    return f"{flops / 1e6:,.4g} MFLOP/s"


def tail(name, lines=5):
    path = out / name
    return path.read_text(errors="replace").splitlines()[-lines:] if path.is_file() else []


steps = [line.split("\t") for line in (out / "steps.tsv").read_text().splitlines()[1:]]
summary = {"steps": [{"step": s, "status": st, "seconds": int(sec), "kind": k}
                     for s, st, sec, k in steps]}
md = ["# GPU results", "", *[f"    {line}" for line in tail("env.log", 4)[1:]], "",
      "| step | status | seconds |", "|---|---|--:|"]
md += [f"| {s} | {st} | {sec} |" for s, st, sec, _ in steps]

metrics = out / "gpu-run" / "metrics.jsonl"
if metrics.is_file():
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    estimates = [r for r in rows if not r.get("final")]
    reached = next((r for r in rows if "time_to_target_s" in r), None)
    final = next((r for r in reversed(rows) if r.get("final")), None)
    best = min(estimates, key=lambda r: r["val_loss"]) if estimates else None
    summary["gpu_run"] = {"reached": reached, "final": final, "best_estimate": best,
                          "last": estimates[-1] if estimates else None}
    md += ["", "## The gpu preset on Tiny Shakespeare, to a target loss", ""]
    if reached:
        md.append(f"target_loss {reached['target_loss']} reached at step {reached['step']}, "
                  f"{reached['time_to_target_s']:.1f} s into the run "
                  f"(estimated val loss {reached['val_loss']:.4f})")
    elif best:
        md.append(f"target not reached: best estimated val loss {best['val_loss']:.4f} at step "
                  f"{best['step']}, {best['elapsed_s']:.1f} s into the run; last step "
                  f"{estimates[-1]['step']}")
    if final:
        md.append(f"whole validation split at step {final['step']}: loss "
                  f"{final['val_loss']:.4f}, {final['val_bpb']:.4f} bits per byte")

bench = read_json("bench-train-gpu.json")
if bench:
    summary["bench_train"] = {k: bench[k] for k in ("achieved_flops", "peak_flops",
                                                     "peak_source", "mfu")}
    summary["bench_train"]["tokens_per_s"] = bench["bench"]["tokens_per_s"]
    mfu = f"{bench['mfu']:.1%} of {bench['peak_source']}" if bench["mfu"] else bench["peak_source"]
    md += ["", "## Throughput: bench train --preset gpu", "",
           f"{bench['bench']['tokens_per_s']:,.0f} tokens/s on {bench['bench']['device']}, "
           f"{rate(bench['achieved_flops'])} of model arithmetic; MFU {mfu}"]

ladder = read_json("ladder-gpt2.json")
if ladder:
    summary["ladder_gpt2"] = ladder["rows"]
    md += ["", "## The speed ladder at GPT-2's shape", "",
           *(out / "ladder-gpt2.md").read_text().splitlines()]

md += ["", "## bench generate (last lines)", "", *[f"    {line}" for line in tail("generate.log")]]
if (out / "sample.log").is_file():
    md += ["", "## A sample of the trained run", "",
           *[f"    {line}" for line in tail("sample.log", 40)[1:]]]
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
(out / "summary.md").write_text("\n".join(md) + "\n")
print("\n".join(md))
PY
exit "$failed"
