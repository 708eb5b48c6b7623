#!/bin/sh
# The sample budgets again on val views with the 96^3 table (after the main run.sh), then the budget they
# choose on the test views of forward and object (flower's val views chose it before) and on whole views.
set -e
D=reports/coarse-grid-96
for s in "forward checkpoints/forward/checkpoint.pt 0.5" "object checkpoints/object/checkpoint.pt 0.5" \
         "../shared/data/nerf_llff_data/flower checkpoints/flower/checkpoint.pt 0.25"; do
  .venv/bin/python reports/coarse-grid/val_budget.py $s
done > $D/val-budget.log
E=.venv/bin/nerf-eval
$E report --checkpoint checkpoints/forward/checkpoint.pt --scene forward --scale 0.5 --latency-rays 1024 \
  --compressors samples:32:coarse=32+occupancy+coarse-grid,samples:32:coarse=32+occupancy+coarse-grid+int8-ptq-both \
  --out $D/forward-32-32
$E report --checkpoint checkpoints/object/checkpoint.pt --scene object --views 0,1,2,3 --scale 0.5 --latency-rays 1024 \
  --compressors samples:32:coarse=32+occupancy+coarse-grid,samples:32:coarse=32+occupancy+coarse-grid+int8-ptq-both \
  --out $D/object-32-32
W=reports/whole-view-latency/whole_view.py
.venv/bin/python $W forward checkpoints/forward/checkpoint.pt 0.5 samples:32:coarse=32+occupancy+coarse-grid,samples:32:coarse=32+occupancy+coarse-grid+int8-ptq-both > $D/whole-view-32-32.log
.venv/bin/python $W object checkpoints/object/checkpoint.pt 0.5 samples:32:coarse=32+occupancy+coarse-grid,samples:32:coarse=32+occupancy+coarse-grid+int8-ptq-both >> $D/whole-view-32-32.log
.venv/bin/python reports/coarse-grid/extra_poses.py samples:32:coarse=32+occupancy+coarse-grid > $D/extra-poses-32-32.log
