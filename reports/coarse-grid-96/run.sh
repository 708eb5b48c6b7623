#!/bin/sh
# The measurements here, in the order they ran (from the repository root): the render-time compositions with
# coarse-grid's 96^3 table (the default since it was chosen on val views, reports/occupancy-margin/val_grid_res.py)
# beside the 64^3 table they had before, on the test views of forward, object and flower, then paired whole views.
set -e
D=reports/coarse-grid-96
E=.venv/bin/nerf-eval
$E report --checkpoint checkpoints/forward/checkpoint.pt --scene forward --scale 0.5 --latency-rays 1024 \
  --compressors samples+occupancy+coarse-grid,samples+occupancy+coarse-grid:64,samples+occupancy+coarse-grid+int8-ptq-both \
  --out $D/forward
$E report --checkpoint checkpoints/object/checkpoint.pt --scene object --views 0,1,2,3 --scale 0.5 --latency-rays 1024 \
  --compressors samples+occupancy+coarse-grid,samples+occupancy+coarse-grid:64,samples+occupancy+coarse-grid+int8-ptq-both \
  --out $D/object
$E report --checkpoint checkpoints/flower/checkpoint.pt --scene ../shared/data/nerf_llff_data/flower --scale 0.25 --latency-rays 1024 \
  --compressors samples:32:coarse=32+occupancy+coarse-grid,samples:32:coarse=32+occupancy+coarse-grid:64,samples:32:coarse=32+occupancy+coarse-grid+int8-ptq-both \
  --out $D/flower
W=reports/whole-view-latency/whole_view.py
.venv/bin/python $W forward checkpoints/forward/checkpoint.pt 0.5 samples+occupancy+coarse-grid,samples+occupancy+coarse-grid:64,samples+occupancy+coarse-grid+int8-ptq-both > $D/whole-view.log
.venv/bin/python $W object checkpoints/object/checkpoint.pt 0.5 samples+occupancy+coarse-grid,samples+occupancy+coarse-grid:64,samples+occupancy+coarse-grid+int8-ptq-both >> $D/whole-view.log
.venv/bin/python $W ../shared/data/nerf_llff_data/flower checkpoints/flower/checkpoint.pt 0.25 samples:32:coarse=32+occupancy+coarse-grid,samples:32:coarse=32+occupancy+coarse-grid:64,samples:32:coarse=32+occupancy+coarse-grid+int8-ptq-both >> $D/whole-view.log
.venv/bin/python reports/coarse-grid/extra_poses.py samples+occupancy+coarse-grid,samples+occupancy+coarse-grid:64 > $D/extra-poses.log
