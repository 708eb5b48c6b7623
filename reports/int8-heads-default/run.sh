#!/bin/sh
# The measurements here, in the order they ran (from the repository root): int8-ptq-both as it is now
# (int8-weight heads) beside int8-ptq-both:heads=fp32 (the default before 5df2d44) and the render-time
# compositions with int8, on the test views of forward, object and flower, then paired whole views.
set -e
D=reports/int8-heads-default
E=.venv/bin/nerf-eval
$E report --checkpoint checkpoints/forward/checkpoint.pt --scene forward --scale 0.5 --latency-rays 1024 \
  --compressors int8-ptq-both,int8-ptq-both:heads=fp32,samples+occupancy+coarse-grid+int8-ptq-both \
  --out $D/forward
$E report --checkpoint checkpoints/object/checkpoint.pt --scene object --views 0,1,2,3 --scale 0.5 --latency-rays 1024 \
  --compressors int8-ptq-both,int8-ptq-both:heads=fp32,samples+occupancy+coarse-grid+int8-ptq-both \
  --out $D/object
$E report --checkpoint checkpoints/flower/checkpoint.pt --scene ../shared/data/nerf_llff_data/flower --scale 0.25 --latency-rays 1024 \
  --compressors int8-ptq-both,int8-ptq-both:heads=fp32,samples:32:coarse=32+occupancy+coarse-grid+int8-ptq-both \
  --out $D/flower
W=reports/whole-view-latency/whole_view.py
.venv/bin/python $W forward checkpoints/forward/checkpoint.pt 0.5 int8-ptq-both,int8-ptq-both:heads=fp32,samples+occupancy+coarse-grid+int8-ptq-both > $D/whole-view.log
.venv/bin/python $W object checkpoints/object/checkpoint.pt 0.5 int8-ptq-both,int8-ptq-both:heads=fp32,samples+occupancy+coarse-grid+int8-ptq-both >> $D/whole-view.log
.venv/bin/python $W ../shared/data/nerf_llff_data/flower checkpoints/flower/checkpoint.pt 0.25 int8-ptq-both,int8-ptq-both:heads=fp32,samples:32:coarse=32+occupancy+coarse-grid+int8-ptq-both >> $D/whole-view.log
$E roofline --checkpoint checkpoints/object/checkpoint.pt --scene object --rays 1024 --rounds 3 --threads 2 \
  --compressors fp32,bf16,fp16,int8-ptq-both,int8-ptq-both:heads=fp32,occupancy+int8-ptq-both,samples+occupancy+coarse-grid+int8-ptq-both \
  --out $D/roofline-object
