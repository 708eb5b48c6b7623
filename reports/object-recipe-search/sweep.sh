#!/bin/bash
# Train several candidate recipes from step 0 in parallel, evaluate each on the 10 test views at 64+128.
# usage: DEV=cuda BF=--bf16 OUTDIR=out bash reports/object-recipe-search/sweep.sh "WARMSTART:PHOTOMETRIC[:EXTRA TRAIN OPTIONS]" ...
# Each plan trains in /tmp/plan_TAG (overwritten); OUTDIR gets plans.txt and results.tgz (eval JSON, log tails).
# Optional: PY (python), TAG (plan-name prefix), EVX (extra evaluate options, e.g. "--views 0 --scale 0.5").
DEV=${DEV:-cuda}; OUTDIR=${OUTDIR:-/tmp/plans}
PY=${PY:-python3}
mkdir -p $OUTDIR
i=0
for plan in "$@"; do
  IFS=: read ws ph opts <<< "$plan"; i=$((i+1))
  tag=${TAG:-p}$i; echo "$tag $plan" >> $OUTDIR/plans.txt
  d=/tmp/plan_$tag
  ( $PY -m nerf_eval.cli train --scene object --out $d --force --warmstart-steps $ws --warmstart-points 8192 \
      --steps $ph --batch-rays 1024 --n-coarse 32 --n-fine 32 --precrop-steps 100 --threads 2 \
      --checkpoint-every 100000 --device $DEV $BF $opts > $OUTDIR/train_$tag.log 2>&1
    $PY -m nerf_eval.cli evaluate --checkpoint $d/checkpoint.pt --scene object --device $DEV --no-flip \
      --json $OUTDIR/eval_$tag.json $EVX > $OUTDIR/eval_$tag.log 2>&1
    tail -c 300 $d/train_log.jsonl > $OUTDIR/tail_$tag.txt ) &
done
wait
cat $OUTDIR/plans.txt
for f in $OUTDIR/eval_*.json; do echo "$f $(python3 -c "import json;d=json.load(open('$f'));print({k:round(v,4) for k,v in d['mean'].items()})")"; done
for f in $OUTDIR/train_*.log; do echo "$f $(tail -c 120 $f)"; done
cd $OUTDIR && tar czf results.tgz plans.txt eval_*.json tail_*.txt $(ls train_*.log) && rm -f eval_* tail_* train_*
